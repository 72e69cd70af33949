using System.Security.Cryptography;
using System.Text;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// A fresh database for one test: a SQLite file, or a new database on the throwaway PostgreSQL cluster that
/// <c>scripts/test.sh</c> starts (its server connection string is in CMP_TEST_POSTGRES). Empty, or already migrated:
/// a copy of a template migrated once per build, because running every migration again for each test made up a fifth
/// or more of a short test's time.
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

    private static readonly string SqliteDirectory = Path.Combine(Path.GetTempPath(), "cmp-adapter-tests");

    private static readonly Lazy<Task<string>> SqliteTemplate = new(() => CreateTemplateAsync(DatabaseProvider.Sqlite));

    private static readonly Lazy<Task<string>> PostgresTemplate = new(() => CreateTemplateAsync(DatabaseProvider.Postgres));

    /// <summary>An empty database, for tests of migrating it.</summary>
    public static Task<TestDatabase> CreateAsync(DatabaseProvider provider) => CreateAsync(provider, template: null);

    /// <summary>A database with every migration applied, as <c>db migrate</c> leaves it.</summary>
    public static async Task<TestDatabase> CreateMigratedAsync(DatabaseProvider provider) =>
        await CreateAsync(provider, await (provider == DatabaseProvider.Sqlite ? SqliteTemplate : PostgresTemplate).Value);

    private static async Task<TestDatabase> CreateAsync(DatabaseProvider provider, string? template)
    {
        if (provider == DatabaseProvider.Sqlite)
        {
            Directory.CreateDirectory(SqliteDirectory);
            var file = Path.Combine(SqliteDirectory, Guid.NewGuid().ToString("N") + ".db");
            if (template is not null)
            {
                File.Copy(template, file);
            }

            return new TestDatabase(provider, $"Data Source={file}", file, null);
        }

        var name = "cmp_test_" + Guid.NewGuid().ToString("N")[..16];
        await ExecuteOnServerAsync(template is null ? $"CREATE DATABASE {name}" : $"CREATE DATABASE {name} TEMPLATE {template}");
        var builder = new NpgsqlConnectionStringBuilder(PostgresServer) { Database = name, MaxPoolSize = 200 };
        return new TestDatabase(provider, builder.ConnectionString, null, name);
    }

    /// <summary>
    /// Migrates a database once and keeps it as the template, named after the build's migrations (the assembly's
    /// version id changes with any edit to them). It is migrated under a name of its own and only then renamed or
    /// moved into place, so a test process never copies a half-migrated template, even beside another process.
    /// </summary>
    private static async Task<string> CreateTemplateAsync(DatabaseProvider provider)
    {
        var build = typeof(AdapterDbContext).Assembly.ManifestModule.ModuleVersionId.ToString("N");
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(provider + build)))[..16];
        if (provider == DatabaseProvider.Sqlite)
        {
            var template = Path.Combine(SqliteDirectory, $"template-{id}.sqlite");
            if (!File.Exists(template))
            {
                await using var scratch = await CreateAsync(provider, template: null);
                await MigrateAsync(scratch.Settings);
                Microsoft.Data.Sqlite.SqliteConnection.ClearPool(new Microsoft.Data.Sqlite.SqliteConnection(scratch.ConnectionString));
                var part = template + ".part-" + Guid.NewGuid().ToString("N");
                File.Copy(scratch._sqliteFile!, part);
                File.Move(part, template, overwrite: true);
                // Earlier builds' templates, once no test run can still be copying them (another build's may be running now).
                foreach (var older in Directory.GetFiles(SqliteDirectory, "template-*.sqlite").Where(f => File.GetLastWriteTimeUtc(f) < DateTime.UtcNow.AddDays(-1)))
                {
                    File.Delete(older);
                }
            }

            return template;
        }

        var name = "cmp_template_" + id;
        await using (var server = new NpgsqlConnection(PostgresServer))
        {
            await server.OpenAsync();
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", server);
            exists.Parameters.AddWithValue("name", name);
            if (await exists.ExecuteScalarAsync() is not null)
            {
                return name;
            }
        }

        var migrating = await CreateAsync(provider, template: null);
        await MigrateAsync(migrating.Settings);
        NpgsqlConnection.ClearAllPools();
        try
        {
            await ExecuteOnServerAsync($"ALTER DATABASE {migrating._postgresName} RENAME TO {name}");
        }
        catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.DuplicateDatabase)
        {
            await migrating.DisposeAsync(); // another process made it first
        }

        return name;
    }

    private static async Task MigrateAsync(IReadOnlyDictionary<string, string?> settings)
    {
        using var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(settings));
        await host.Services.MigrateAsync(CancellationToken.None);
    }

    private static async Task ExecuteOnServerAsync(string sql)
    {
        await using var connection = new NpgsqlConnection(PostgresServer);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
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
            await ExecuteOnServerAsync($"DROP DATABASE IF EXISTS {_postgresName} WITH (FORCE)");
        }
    }
}
