using CmpWaldurAdapter.Persistence;
using Npgsql;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// A fresh, empty database for one test: a SQLite file, or a new database on the throwaway PostgreSQL
/// cluster that <c>scripts/test.sh</c> starts (its server connection string is in CMP_TEST_POSTGRES).
/// </summary>
public sealed class TestDatabase : IAsyncDisposable
{
    public const string PostgresVariable = "CMP_TEST_POSTGRES";

    /// <summary>
    /// The key-encryption key every test host's key ring is stored under (32 bytes, base64), as production's PostgreSQL
    /// requires; tests of the key ring itself replace or remove it.
    /// </summary>
    public const string KeyEncryptionKey = "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=";

    private readonly string? _sqliteFile;
    private readonly string? _postgresName;

    private TestDatabase(DatabaseProvider provider, string connectionString, string? sqliteFile, string? postgresName)
    {
        Provider = provider;
        ConnectionString = connectionString;
        _sqliteFile = sqliteFile;
        _postgresName = postgresName;
    }

    public DatabaseProvider Provider { get; }

    public string ConnectionString { get; }

    public static async Task<TestDatabase> CreateAsync(DatabaseProvider provider)
    {
        if (provider == DatabaseProvider.Sqlite)
        {
            var directory = Path.Combine(Path.GetTempPath(), "cmp-adapter-tests");
            Directory.CreateDirectory(directory);
            var file = Path.Combine(directory, Guid.NewGuid().ToString("N") + ".db");
            return new TestDatabase(provider, $"Data Source={file}", file, null);
        }

        var server = PostgresServer;
        var name = "cmp_test_" + Guid.NewGuid().ToString("N")[..16];
        await using (var connection = new NpgsqlConnection(server))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }

        var builder = new NpgsqlConnectionStringBuilder(server) { Database = name, MaxPoolSize = 200 };
        return new TestDatabase(provider, builder.ConnectionString, null, name);
    }

    public static string PostgresServer =>
        Environment.GetEnvironmentVariable(PostgresVariable)
        ?? throw new InvalidOperationException($"{PostgresVariable} is not set: run the tests through scripts/test.sh, which starts a throwaway PostgreSQL cluster.");

    public IReadOnlyDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Database:Provider"] = Provider.ToString(),
        ["Database:ConnectionString"] = ConnectionString,
        ["DataProtection:KeyEncryptionKey"] = KeyEncryptionKey,
    };

    public async ValueTask DisposeAsync()
    {
        if (_sqliteFile is not null)
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            foreach (var file in new[] { _sqliteFile, _sqliteFile + "-wal", _sqliteFile + "-shm" })
            {
                File.Delete(file);
            }
        }

        if (_postgresName is not null)
        {
            NpgsqlConnection.ClearAllPools();
            await using var connection = new NpgsqlConnection(PostgresServer);
            await connection.OpenAsync();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_postgresName} WITH (FORCE)", connection);
            await drop.ExecuteNonQueryAsync();
        }
    }
}
