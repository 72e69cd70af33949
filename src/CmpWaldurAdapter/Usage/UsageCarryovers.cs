using System.Globalization;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Usage;

/// <summary>Reads and records <see cref="UsageCarryover"/> rows.</summary>
public static class UsageCarryovers
{
    /// <summary>Every row carried from or into one of <paramref name="periods"/>, by resource: one query for a whole report.</summary>
    public static async Task<ILookup<Guid, UsageCarryover>> ForPeriodsAsync(AdapterDbContext db, IReadOnlyCollection<BillingPeriod> periods, CancellationToken cancellationToken)
    {
        var days = periods.Select(p => p.FirstDay).ToList();
        var rows = await db.UsageCarryovers.AsNoTracking()
            .Where(c => days.Contains(c.FromPeriod) || days.Contains(c.IntoPeriod))
            .ToListAsync(cancellationToken);
        return rows.ToLookup(c => c.ResourceUuid);
    }

    /// <summary>The resource's rows carried from or into one of <paramref name="periods"/>.</summary>
    public static async Task<IReadOnlyList<UsageCarryover>> ForResourceAsync(AdapterDbContext db, Guid resourceUuid, IReadOnlyCollection<BillingPeriod> periods, CancellationToken cancellationToken)
    {
        var days = periods.Select(p => p.FirstDay).ToList();
        return await db.UsageCarryovers.AsNoTracking()
            .Where(c => c.ResourceUuid == resourceUuid && (days.Contains(c.FromPeriod) || days.Contains(c.IntoPeriod)))
            .ToListAsync(cancellationToken);
    }

    /// <summary>The ledger's totals of <paramref name="period"/> plus what was carried into it.</summary>
    public static IReadOnlyDictionary<string, decimal> Plus(IReadOnlyDictionary<string, decimal> ledger, IEnumerable<UsageCarryover> carried, BillingPeriod period)
    {
        var into = carried.Where(c => c.IntoPeriod == period.FirstDay && c.Credits > 0).ToList();
        if (into.Count == 0)
        {
            return ledger;
        }

        var totals = new Dictionary<string, decimal>(ledger, StringComparer.Ordinal);
        foreach (var carry in into)
        {
            totals[carry.Component] = (totals.TryGetValue(carry.Component, out var charged) ? charged : 0m) + carry.Credits;
        }

        return totals;
    }

    /// <summary>
    /// Records the rows not recorded yet (by component of the same resource and month) and returns, for each component of
    /// <paramref name="rows"/>, the row as stored: this call's, or the one another replica or run recorded first (its
    /// amount wins, so a month is carried once). <c>Written</c> holds the rows this call recorded.
    /// </summary>
    public static async Task<(IReadOnlyList<UsageCarryover> Stored, IReadOnlyList<UsageCarryover> Written)> RecordAsync(
        IDbContextFactory<AdapterDbContext> dbs, Guid resourceUuid, BillingPeriod from, IReadOnlyList<UsageCarryover> rows, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var written = new List<UsageCarryover>();
        foreach (var row in rows)
        {
            if (await db.Database.ExecuteSqlInterpolatedAsync(Insert(db, row), cancellationToken) == 1)
            {
                written.Add(row);
            }
        }

        var components = rows.Select(r => r.Component).ToList();
        var stored = await db.UsageCarryovers.AsNoTracking()
            .Where(c => c.ResourceUuid == resourceUuid && c.FromPeriod == from.FirstDay && components.Contains(c.Component))
            .ToListAsync(cancellationToken);
        return (stored, written);
    }

    /// <summary>
    /// Inserts the row unless one with its key exists (ON CONFLICT DO NOTHING, in PostgreSQL and SQLite alike): a race is
    /// lost quietly, without the unique violation EF Core would log as an error.
    /// </summary>
    private static FormattableString Insert(AdapterDbContext db, UsageCarryover row) => $"""
        INSERT INTO usage_carryovers (resource_uuid, component, from_period, into_period, credits, subscription_id, customer_id, carried_at)
        VALUES ({StoredValues.Uuid(db, row.ResourceUuid)}, {row.Component}, {Day(db, row.FromPeriod)}, {Day(db, row.IntoPeriod)}, {Amount(db, row.Credits)},
                {StoredValues.Uuid(db, row.SubscriptionId)}, {StoredValues.Uuid(db, row.CustomerId)}, {StoredValues.Instant(db, row.CarriedAt)})
        ON CONFLICT DO NOTHING
        """;

    // SQLite keeps dates and decimals as text.
    private static object Day(AdapterDbContext db, DateOnly day) => db.Database.IsSqlite() ? day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) : day;

    private static object Amount(AdapterDbContext db, decimal credits) => db.Database.IsSqlite() ? credits.ToString(CultureInfo.InvariantCulture) : credits;
}
