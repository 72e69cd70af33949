using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Persistence;

/// <summary>
/// Whether the database holds every migration this build knows. PostgreSQL is migrated by <c>db migrate</c>, not by
/// <c>serve</c>: a build rolled out before it ran would serve on the old schema and fail requests with SQL errors.
/// Migrations this build does not know (a newer build migrated, then was rolled back) are not pending: the old
/// replicas must keep serving through a rollout, and a rollback must find them ready.
/// </summary>
public sealed class SchemaStatus(IDbContextFactory<AdapterDbContext> dbs)
{
    // Migrations are never un-applied, so once caught up the schema stays so: readiness, polled every few seconds,
    // then reads no history table.
    private volatile bool _upToDate;

    /// <summary>This build's migrations the database lacks, oldest first; empty once up to date.</summary>
    public async Task<IReadOnlyList<string>> PendingAsync(CancellationToken cancellationToken)
    {
        if (_upToDate)
        {
            return [];
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
        _upToDate = pending.Count == 0;
        return pending;
    }

    /// <summary>Migrations the database holds that this build does not know: a newer build migrated it.</summary>
    public async Task<IReadOnlyList<string>> UnknownAppliedAsync(CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var known = db.Database.GetMigrations().ToHashSet(StringComparer.Ordinal);
        return [.. (await db.Database.GetAppliedMigrationsAsync(cancellationToken)).Where(m => !known.Contains(m))];
    }
}
