using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Persistence;

public static class DatabaseMigrations
{
    /// <summary>A SQLite migration lock older than this was left by a process that died migrating.</summary>
    public static readonly TimeSpan StaleMigrationLock = TimeSpan.FromMinutes(15);

    /// <summary>Applies pending migrations; returns their names.</summary>
    public static async Task<IReadOnlyList<string>> MigrateAsync(this IServiceProvider services, CancellationToken cancellationToken)
    {
        var dbs = services.GetRequiredService<IDbContextFactory<AdapterDbContext>>();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        // EF Core reads the history table before creating it and logs the failed read of a fresh database as an
        // error (dotnet/efcore#37328): an operator's first install would start with two alarming lines. An empty
        // table first makes that read succeed; creating it is idempotent.
        await db.GetService<IHistoryRepository>().CreateIfNotExistsAsync(cancellationToken);
        var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
        if (pending.Count > 0)
        {
            if (db.Database.IsSqlite())
            {
                await ReleaseStaleSqliteLockAsync(db, services, cancellationToken);
            }

            await db.Database.MigrateAsync(cancellationToken);
        }

        if (db.Database.IsSqlite())
        {
            // Write-ahead logging lets readers proceed while a writer commits; the setting persists in the file.
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", cancellationToken);
        }

        return pending;
    }

    /// <summary>
    /// EF Core locks a SQLite migration with a row that only the migrating process removes: one killed mid-migration
    /// (a drained node, an OOM kill, a start past its probe's budget) leaves it, and every later start and command
    /// would wait on it for ever. A live migration here holds it for seconds, so a row this old is a dead process's.
    /// </summary>
    private static async Task ReleaseStaleSqliteLockAsync(AdapterDbContext db, IServiceProvider services, CancellationToken cancellationToken)
    {
        var connection = db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(cancellationToken);
        try
        {
            await using var find = connection.CreateCommand();
            find.CommandText = "SELECT \"Timestamp\" FROM \"__EFMigrationsLock\"";
            string? taken;
            try
            {
                taken = await find.ExecuteScalarAsync(cancellationToken) as string;
            }
            catch (Microsoft.Data.Sqlite.SqliteException)
            {
                return; // no lock table: never migrated with a lock
            }

            // A time that cannot be read may be a live migration's: only a lock known to be old is released.
            if (taken is null
                || !DateTimeOffset.TryParse(taken, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var at)
                || at > DateTimeOffset.UtcNow - StaleMigrationLock)
            {
                return;
            }

            await using var release = connection.CreateCommand();
            release.CommandText = "DELETE FROM \"__EFMigrationsLock\"";
            await release.ExecuteNonQueryAsync(cancellationToken);
            services.GetService<ILoggerFactory>()?.CreateLogger(typeof(DatabaseMigrations)).LogWarning(
                "Released the migration lock taken at {LockedAt} by a process that did not finish migrating", taken);
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>
    /// The embedded SQLite database is migrated when the server starts, so one command runs the product.
    /// PostgreSQL is migrated explicitly (<c>db migrate</c>, the Helm hook), never by several replicas at once.
    /// </summary>
    public static async Task MigrateEmbeddedDatabaseAsync(this IServiceProvider services, CancellationToken cancellationToken)
    {
        if (services.GetRequiredService<IOptions<DatabaseOptions>>().Value.Provider == DatabaseProvider.Sqlite)
        {
            await services.MigrateAsync(cancellationToken);
        }
    }
}
