using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Persistence;

public static class DatabaseMigrations
{
    /// <summary>Applies pending migrations; returns their names.</summary>
    public static async Task<IReadOnlyList<string>> MigrateAsync(this IServiceProvider services, CancellationToken cancellationToken)
    {
        var dbs = services.GetRequiredService<IDbContextFactory<AdapterDbContext>>();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
        if (pending.Count > 0)
        {
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
