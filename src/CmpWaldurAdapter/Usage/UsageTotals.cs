using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Usage;

/// <summary>Month-to-date credit totals from the ledger: settled charges only, by UTC calendar month.</summary>
public static class UsageTotals
{
    /// <summary>The resources with charges in any of <paramref name="periods"/>.</summary>
    public static async Task<IReadOnlyList<Guid>> ResourcesWithUsageAsync(AdapterDbContext db, IReadOnlyCollection<BillingPeriod> periods, CancellationToken cancellationToken)
    {
        var days = periods.Select(p => p.FirstDay).ToList();
        return await db.LedgerEntries.AsNoTracking()
            .Where(e => e.Kind == LedgerEntryKind.Charge && days.Contains(e.Period) && e.ResourceUuid != null)
            .Select(e => e.ResourceUuid!.Value)
            .Distinct()
            .ToListAsync(cancellationToken);
    }

    /// <summary>
    /// Credits charged in <paramref name="period"/> to every resource, per component: one grouped query
    /// for the month instead of one per resource. Resources without charges in the month are absent.
    /// </summary>
    public static async Task<IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, decimal>>> ForPeriodAsync(AdapterDbContext db, BillingPeriod period, CancellationToken cancellationToken)
    {
        var day = period.FirstDay;
        var rows = await db.LedgerEntries.AsNoTracking()
            .Where(e => e.Kind == LedgerEntryKind.Charge && e.Period == day && e.ResourceUuid != null && e.Component != null)
            .GroupBy(e => new { Resource = e.ResourceUuid!.Value, Component = e.Component! })
            .Select(g => new { g.Key.Resource, g.Key.Component, Credits = g.Sum(e => e.Credits) })
            .ToListAsync(cancellationToken);
        return rows.GroupBy(r => r.Resource).ToDictionary(
            g => g.Key,
            g => (IReadOnlyDictionary<string, decimal>)g.ToDictionary(r => r.Component, r => (decimal)r.Credits, StringComparer.Ordinal));
    }

    /// <summary>Credits charged to <paramref name="resourceUuid"/> in <paramref name="period"/>, per component.</summary>
    public static async Task<IReadOnlyDictionary<string, decimal>> ForResourceAsync(AdapterDbContext db, Guid resourceUuid, BillingPeriod period, CancellationToken cancellationToken)
    {
        var day = period.FirstDay;
        var rows = await db.LedgerEntries.AsNoTracking()
            .Where(e => e.Kind == LedgerEntryKind.Charge && e.ResourceUuid == resourceUuid && e.Period == day && e.Component != null)
            .GroupBy(e => e.Component!)
            .Select(g => new { Component = g.Key, Credits = g.Sum(e => e.Credits) })
            .ToListAsync(cancellationToken);
        return rows.ToDictionary(r => r.Component, r => (decimal)r.Credits, StringComparer.Ordinal);
    }

    /// <summary>Credits charged to a subscription in <paramref name="period"/>, per component.</summary>
    public static async Task<IReadOnlyDictionary<string, long>> ForSubscriptionAsync(AdapterDbContext db, Guid subscriptionId, BillingPeriod period, CancellationToken cancellationToken)
    {
        var day = period.FirstDay;
        var rows = await db.LedgerEntries.AsNoTracking()
            .Where(e => e.Kind == LedgerEntryKind.Charge && e.SubscriptionId == subscriptionId && e.Period == day && e.Component != null)
            .GroupBy(e => e.Component!)
            .Select(g => new { Component = g.Key, Credits = g.Sum(e => e.Credits) })
            .ToListAsync(cancellationToken);
        return rows.ToDictionary(r => r.Component, r => r.Credits, StringComparer.Ordinal);
    }
}
