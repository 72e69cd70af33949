using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Credits.SpendAlerts;

/// <summary>
/// Monthly spend alerts, checked off the chat path: each check sums this month's charges of the subscriptions that
/// set an alert and records each threshold (50, 80, 100 %) reached and not yet recorded this month. With an
/// escalation webhook set, the alert goes into its outbox in the same transaction and is delivered, signed and
/// retried, like an escalation. Alerts refuse nothing: the organization's balance does that.
/// </summary>
public sealed class SpendAlertMonitor(
    IDbContextFactory<AdapterDbContext> dbs,
    IOptions<WebOptions> web,
    TimeProvider clock,
    ILogger<SpendAlertMonitor> logger)
{
    /// <summary>Subscriptions summed per query, to keep its list of ids short.</summary>
    private const int SumBatch = 500;

    /// <summary>How long into a month the previous one is checked too (see <see cref="CheckAsync(CancellationToken)"/>).</summary>
    public static readonly TimeSpan PreviousMonthCatchUp = TimeSpan.FromHours(1);

    /// <summary>
    /// Checks every subscription with an alert once; returns how many thresholds it recorded. In the first hour of a
    /// month the previous month is checked as well: charges of its last minutes came after its last check (against the
    /// amount it ended with: a subscription whose amount changed since is left out of that check).
    /// </summary>
    public async Task<int> CheckAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var period = BillingPeriod.Of(now);
        var recorded = 0;
        if (now - period.Start < PreviousMonthCatchUp)
        {
            recorded += await CheckAsync(period.Previous, now, cancellationToken);
        }

        return recorded + await CheckAsync(period, now, cancellationToken);
    }

    private async Task<int> CheckAsync(BillingPeriod period, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var day = period.FirstDay;
        var (end, ended) = (period.End, period.End <= now);
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var watched = await db.BuyerWebSettings.AsNoTracking()
            // An amount below one credit (only ever written outside the console, which refuses it) is no alert.
            .Where(s => s.MonthlySpendAlertCredits != null && s.MonthlySpendAlertCredits > 0)
            // A month already over is measured only against an amount set before it ended: one set or changed since
            // belongs to the new month, and would alert the old one for thresholds the buyer never set for it.
            .Where(s => !ended || s.MonthlySpendAlertSetAt == null || s.MonthlySpendAlertSetAt < end)
            .Join(db.Subscriptions.AsNoTracking(), s => s.SubscriptionId, s => s.Id, (settings, subscription) => new Watched(subscription.Id, subscription.ResourceUuid, settings.MonthlySpendAlertCredits!.Value))
            .ToListAsync(cancellationToken);
        if (watched.Count == 0)
        {
            return 0;
        }

        var alerted = (await db.SpendAlerts.AsNoTracking().Where(a => a.Period == day)
                .Select(a => new { a.SubscriptionId, a.ThresholdPercent }).ToListAsync(cancellationToken))
            .ToLookup(a => a.SubscriptionId, a => a.ThresholdPercent);
        // A subscription alerted at every threshold this month has nothing left to tell: its charges are not summed.
        var open = watched.Where(w => alerted[w.SubscriptionId].Count() < SpendAlertRules.ThresholdPercents.Count).ToList();
        var recorded = 0;
        foreach (var batch in open.Chunk(SumBatch))
        {
            var spent = await SpentAsync(db, batch.Select(w => (w.SubscriptionId, w.ResourceUuid)).ToList(), day, cancellationToken);
            foreach (var subscription in batch)
            {
                // Each subscription on its own: one that fails is logged and retried by the next check, the others are alerted.
                try
                {
                    var total = spent.GetValueOrDefault(subscription.SubscriptionId);
                    foreach (var percent in SpendAlertRules.Reached(total, subscription.AlertCredits).Except(alerted[subscription.SubscriptionId]))
                    {
                        if (await RecordAsync(subscription, period, percent, total, now, cancellationToken))
                        {
                            recorded++;
                        }
                    }
                }
                catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    logger.LogWarning(exception, "Checking the monthly spend alert of subscription {SubscriptionId} failed; the next check retries", subscription.SubscriptionId);
                }
            }
        }

        return recorded;
    }

    /// <summary>
    /// Credits charged to the subscription in <paramref name="period"/>: what its alert is measured against. The console
    /// shows this, not the sum of its usage table: that table lists only the offering's current components and charges
    /// with a component, and an alert counts every charge.
    /// </summary>
    public async Task<long> SpentAsync(Guid subscriptionId, Guid resourceUuid, BillingPeriod period, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return (await SpentAsync(db, [(subscriptionId, resourceUuid)], period.FirstDay, cancellationToken)).GetValueOrDefault(subscriptionId);
    }

    /// <summary>The alerts recorded for the subscription in <paramref name="period"/>, lowest threshold first.</summary>
    public async Task<IReadOnlyList<SpendAlertView>> AlertsAsync(Guid subscriptionId, BillingPeriod period, CancellationToken cancellationToken)
    {
        var day = period.FirstDay;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var alerts = await db.SpendAlerts.AsNoTracking().Where(a => a.SubscriptionId == subscriptionId && a.Period == day)
            .OrderBy(a => a.ThresholdPercent).ToListAsync(cancellationToken);
        var ids = alerts.Select(a => a.Id).ToList();
        var deliveries = await db.HandoffDeliveries.AsNoTracking().Where(d => ids.Contains(d.Id))
            .ToDictionaryAsync(d => d.Id, d => d.DeliveredAt != null, cancellationToken);
        return alerts.Select(a => new SpendAlertView(a.ThresholdPercent, a.AlertCredits, a.SpentCredits, a.DetectedAt,
            deliveries.TryGetValue(a.Id, out var delivered) ? delivered : null)).ToList();
    }

    /// <summary>
    /// One grouped sum over the month's charges of the subscriptions. Charges carry the subscription's resource, and
    /// the ledger's (period, resource_uuid) index finds them: the ledger gets no index of its own for alerts, so the
    /// chat path's inserts cost what they did.
    /// </summary>
    private static async Task<Dictionary<Guid, long>> SpentAsync(AdapterDbContext db, IReadOnlyCollection<(Guid SubscriptionId, Guid ResourceUuid)> subscriptions, DateOnly day,
        CancellationToken cancellationToken)
    {
        var resources = subscriptions.Select(s => (Guid?)s.ResourceUuid).ToList();
        var ids = subscriptions.Select(s => (Guid?)s.SubscriptionId).ToList();
        var rows = await db.LedgerEntries.AsNoTracking()
            .Where(e => e.Period == day && resources.Contains(e.ResourceUuid) && e.Kind == LedgerEntryKind.Charge && ids.Contains(e.SubscriptionId))
            .GroupBy(e => e.SubscriptionId!.Value)
            .Select(g => new { SubscriptionId = g.Key, Credits = g.Sum(e => e.Credits) })
            .ToListAsync(cancellationToken);
        return rows.ToDictionary(r => r.SubscriptionId, r => r.Credits);
    }

    /// <summary>Records one reached threshold and its webhook delivery together; false when another check recorded it first.</summary>
    private async Task<bool> RecordAsync(Watched subscription, BillingPeriod period, int percent, long spent, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var id = Guid.CreateVersion7(now);
        var webhook = await HandoffOutbox.EnqueueAsync(db, subscription.SubscriptionId, id, null,
            () => new SpendThresholdEvent(id, SpendThresholdEvent.EventType, subscription.ResourceUuid, period.ToString(), percent, subscription.AlertCredits, spent, now,
                web.Value.ConsoleLink("usage", subscription.ResourceUuid)),
            now, cancellationToken);

        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        // Recorded already by another replica's check leaves the insert doing nothing, rather than failing with a unique
        // violation EF Core would log as an error; the delivery is then not saved either.
        if (await db.Database.ExecuteSqlAsync($"""
            INSERT INTO spend_alerts (id, subscription_id, period, threshold_percent, alert_credits, spent_credits, detected_at)
            VALUES ({StoredValues.Uuid(db, id)}, {StoredValues.Uuid(db, subscription.SubscriptionId)}, {StoredValues.Day(db, period.FirstDay)}, {percent},
                    {subscription.AlertCredits}, {spent}, {StoredValues.Instant(db, now)})
            ON CONFLICT DO NOTHING
            """, cancellationToken) == 0)
        {
            return false; // another replica's check recorded this threshold (and its delivery)
        }

        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);

        logger.LogInformation("Subscription {SubscriptionId} reached {ThresholdPercent} % of its monthly spend alert of {AlertCredits} credits in {Period}: {SpentCredits} credits spent (webhook: {Webhook})",
            subscription.SubscriptionId, percent, subscription.AlertCredits, period.ToString(), spent, webhook ? "queued" : "none set");
        return true;
    }

    private sealed record Watched(Guid SubscriptionId, Guid ResourceUuid, long AlertCredits);
}

/// <summary>The Quartz job that runs <see cref="SpendAlertMonitor.CheckAsync"/>.</summary>
[DisallowConcurrentExecution]
public sealed class CheckSpendAlertsJob(SpendAlertMonitor monitor) : IJob
{
    public static readonly JobKey Key = new("check-spend-alerts", "credits");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await monitor.CheckAsync(cancellationToken);
}
