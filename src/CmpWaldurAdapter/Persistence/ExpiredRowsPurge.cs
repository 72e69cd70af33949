using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.Chat;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Persistence;

/// <summary>
/// Deletes rows that nothing reads once they have expired, which would otherwise pile up for good: Idempotency-Key
/// entries (one per request that sends a key, with its stored answer), one-time key links, console sign-outs past their cookie's expiry, and handoff records of
/// conversations idle past <see cref="HandoffOptions.ConversationRetention"/> (one per conversation of a subscription
/// with a handoff rule, with its transcript and delivered webhook event), and named leases given up, or run out a day ago.
/// </summary>
/// <remarks>
/// In batches of <see cref="BatchSize"/> rows, each its own statement, so a large backlog never holds its locks for
/// long; at most <see cref="MaxBatchesPerRun"/> per table and run, the next run carries on. History (the ledger,
/// holds, orders, the order inbox) is not touched: it is what makes work happen exactly once, and the audit trail.
/// </remarks>
public sealed class ExpiredRowsPurge(IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock, IOptions<ChatOptions> chat, IOptions<HandoffOptions> handoff)
{
    public const int BatchSize = 2_000;

    public const int MaxBatchesPerRun = 100;

    /// <summary>How long a named lease's row stays once it was released or ran out.</summary>
    public static readonly TimeSpan LeaseRetention = TimeSpan.FromDays(1);

    /// <summary>Returns how many rows were deleted.</summary>
    public async Task<int> PurgeAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        // Past its window a key names a new request (BeginAsync replaces it), so its answer is never replayed again.
        // An unfinished entry must also be past the takeover point, the longest its request may still be running:
        // guaranteed by Chat:IdempotencyWindow's validation, checked again for entries written under other settings.
        var abandoned = now - chat.Value.RunTimeout - IdempotencyStore.AbandonMargin;
        var purged = await PurgeAsync(db => db.IdempotentRequests.Where(r => r.ExpiresAt < now && (r.Completed || r.CreatedAt < abandoned)), cancellationToken);

        // A link used, emptied (its subscription's keys revoked) or expired shows nothing, exactly as an unknown one.
        purged += await PurgeAsync(db => db.KeyReveals.Where(r => r.KeyCipher == null || r.ExpiresAt < now), cancellationToken);

        // A conversation idle past its retention is over; its escalation event goes with it (the database cascades),
        // unless that event is still to be delivered: the outbox drops nothing.
        var idleSince = now - handoff.Value.ConversationRetention;
        purged += await PurgeAsync(db => db.HandoffConversations.Where(c => c.UpdatedAt < idleSince
            && !db.HandoffDeliveries.Any(d => d.ConversationId == c.Id && d.DeliveredAt == null)), cancellationToken);

        // Past its cookie's expiry a signed-out session's token is refused by itself.
        purged += await PurgeAsync(db => db.ConsoleSignOuts.Where(s => s.ExpiresAt < now), cancellationToken);

        // A lease given up (its expiry set to DatabaseLeases.Released), or run out a day ago, guards nothing: one per resource
        // and kind of work would stay for good. Its next taker inserts it anew. The day keeps a holder that is only late
        // renewing (a paused process, a skewed clock) from losing its row under it.
        var unusedSince = now - LeaseRetention;
        purged += await PurgeAsync(db => db.Leases.Where(l => l.ExpiresAt < unusedSince), cancellationToken);
        return purged;
    }

    private async Task<int> PurgeAsync<TRow>(Func<AdapterDbContext, IQueryable<TRow>> expired, CancellationToken cancellationToken)
    {
        var purged = 0;
        for (var batch = 0; batch < MaxBatchesPerRun; batch++)
        {
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            var deleted = await expired(db).Take(BatchSize).ExecuteDeleteAsync(cancellationToken);
            purged += deleted;
            if (deleted < BatchSize)
            {
                break;
            }
        }

        return purged;
    }
}

/// <summary>The Quartz job that runs <see cref="ExpiredRowsPurge.PurgeAsync"/>.</summary>
[DisallowConcurrentExecution]
public sealed class PurgeExpiredRowsJob(ExpiredRowsPurge purge) : IJob
{
    public static readonly JobKey Key = new("purge-expired-rows", "database");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await purge.PurgeAsync(cancellationToken);
}
