using System.Threading.Channels;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// The durable queue of orders to look at. Writers (events, polls, operators) only insert; the unique
/// (order, state) index turns duplicates into no-ops, whichever replica or channel they came from.
/// </summary>
public sealed class OrderInbox(IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock, IOptionsMonitor<OrdersOptions> options)
{
    /// <summary>The state recorded for announcements that did not say which state the order was in.</summary>
    public const string UnknownState = "unknown";

    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    /// <summary>
    /// Records that an order needs a look. With <paramref name="refeed"/>, an order already seen in this
    /// state is made due again (stuck-order recovery, operator request). Returns whether anything changed.
    /// </summary>
    public async Task<bool> EnqueueAsync(Guid orderUuid, string? orderState, string source, bool refeed, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var state = string.IsNullOrWhiteSpace(orderState) ? UnknownState : orderState;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        // Already known (a duplicate message, another replica, a poll finding an order an event announced) is the usual
        // answer: the insert then does nothing, rather than fail with a unique violation EF Core would log as an error.
        if (await db.Database.ExecuteSqlAsync($"""
            INSERT INTO order_inbox (order_uuid, order_state, source, status, attempts, received_at, next_attempt_at)
            VALUES ({StoredValues.Uuid(db, orderUuid)}, {state}, {source}, {nameof(InboxStatus.Pending)}, 0, {StoredValues.Instant(db, now)}, {StoredValues.Instant(db, now)})
            ON CONFLICT DO NOTHING
            """, cancellationToken) == 1)
        {
            Wake();
            return true;
        }

        if (!refeed)
        {
            return state == WaldurOrderStates.Executing && await DueAgainIfMovedBackAsync(db, orderUuid, state, source, now, cancellationToken);
        }

        return await MakeDueAsync(db.OrderInbox.Where(e => e.OrderUuid == orderUuid && e.OrderState == state && (e.Status == InboxStatus.Done || e.NextAttemptAt > now)),
            source, now, cancellationToken);
    }

    /// <summary>
    /// An order announced executing that the adapter has as erred was moved back by Waldur staff (Waldur takes an order from
    /// erred to executing): a second visit to a state already seen, which the (order, state) key would swallow, so its handled
    /// announcement is made due again. Once: the look settles the record (worked again, or erred in Waldur once more).
    /// </summary>
    private async Task<bool> DueAgainIfMovedBackAsync(AdapterDbContext db, Guid orderUuid, string state, string source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await db.Orders.AnyAsync(o => o.OrderUuid == orderUuid && o.Phase == OrderPhase.Erred, cancellationToken))
        {
            return false;
        }

        return await MakeDueAsync(db.OrderInbox.Where(e => e.OrderUuid == orderUuid && e.OrderState == state && e.Status == InboxStatus.Done), source, now, cancellationToken);
    }

    /// <summary>Makes <paramref name="entries"/> due now, as if just announced by <paramref name="source"/>; returns whether any was.</summary>
    private async Task<bool> MakeDueAsync(IQueryable<OrderInboxEntry> entries, string source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var changed = await entries.ExecuteUpdateAsync(set => set
            .SetProperty(e => e.Status, InboxStatus.Pending)
            .SetProperty(e => e.NextAttemptAt, now)
            .SetProperty(e => e.ReceivedAt, now)
            .SetProperty(e => e.Source, source), cancellationToken);
        if (changed > 0)
        {
            Wake();
        }

        return changed > 0;
    }

    /// <summary>Orders with an announcement that is due now, oldest first, leaving out <paramref name="skip"/> (orders already at work here).</summary>
    public async Task<IReadOnlyList<Guid>> DueAsync(int max, IReadOnlyCollection<Guid> skip, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var skipped = skip.ToList();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var due = await db.OrderInbox.AsNoTracking()
            .Where(e => e.Status == InboxStatus.Pending && e.NextAttemptAt <= now && !skipped.Contains(e.OrderUuid))
            .OrderBy(e => e.NextAttemptAt)
            .Select(e => e.OrderUuid)
            .Take(max * 4)
            .ToListAsync(cancellationToken);
        return due.Distinct().Take(max).ToList();
    }

    /// <summary>When the order was first announced (for the announcement-to-done latency), if it was.</summary>
    public async Task<DateTimeOffset?> FirstAnnouncedAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var times = await db.OrderInbox.Where(e => e.OrderUuid == orderUuid).Select(e => e.ReceivedAt).ToListAsync(cancellationToken);
        return times.Count == 0 ? null : times.Min();
    }

    /// <summary>Marks every announcement of the order received up to <paramref name="seenUpTo"/> as handled.</summary>
    public async Task CompleteAsync(Guid orderUuid, DateTimeOffset seenUpTo, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        await db.OrderInbox
            .Where(e => e.OrderUuid == orderUuid && e.Status == InboxStatus.Pending && e.ReceivedAt <= seenUpTo)
            .ExecuteUpdateAsync(set => set
                .SetProperty(e => e.Status, InboxStatus.Done)
                .SetProperty(e => e.CompletedAt, now)
                .SetProperty(e => e.LastError, (string?)null), cancellationToken);
    }

    /// <summary>Schedules the order's pending announcements for a later attempt, backing off exponentially.</summary>
    public async Task DeferAsync(Guid orderUuid, string reason, TimeSpan? fixedDelay, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var attempts = await db.OrderInbox
            .Where(e => e.OrderUuid == orderUuid && e.Status == InboxStatus.Pending)
            .Select(e => (int?)e.Attempts)
            .MaxAsync(cancellationToken) ?? 0;
        var settings = options.CurrentValue;
        var delay = fixedDelay ?? new RetrySchedule(settings.RetryInitial, settings.RetryMaximum).DelayFor(attempts, Random.Shared.NextDouble());
        var next = now + delay;
        var truncated = reason.Length > 2000 ? reason[..2000] : reason;
        await db.OrderInbox
            .Where(e => e.OrderUuid == orderUuid && e.Status == InboxStatus.Pending)
            .ExecuteUpdateAsync(set => set
                .SetProperty(e => e.Attempts, e => e.Attempts + (fixedDelay == null ? 1 : 0))
                .SetProperty(e => e.NextAttemptAt, next)
                .SetProperty(e => e.LastError, truncated), cancellationToken);
    }

    /// <summary>Waits until something was enqueued in this process or the timeout passes.</summary>
    public async Task WaitForWorkAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await _wake.Reader.ReadAsync(timer.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Wakes the inbox worker now: something was enqueued, or one of its slots came free.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);
}
