using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Quartz;

namespace CmpWaldurAdapter.IntegrationTests.Persistence;

/// <summary>
/// The purge job on the test clock: expired Idempotency-Key entries and dead one-time key links are deleted, batch
/// after batch to the end; entries still in their window, and unfinished ones whose request may still be running,
/// are kept and answer as before; handoff records of conversations idle past Handoff:ConversationRetention are deleted,
/// unless their escalation is still to be delivered.
/// </summary>
public abstract class ExpiredRowsPurgeTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 5, 4, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan LongestRun = TimeSpan.FromMinutes(2); // Chat:RunTimeout's default
    private static readonly TimeSpan Window = TimeSpan.FromHours(24); // Chat:IdempotencyWindow's default

    private CreditTestBed _bed = null!;

    private IdempotencyStore Store => _bed.Services.GetRequiredService<IdempotencyStore>();

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(provider, Start);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private Task<(IdempotencyDecision Decision, IdempotentRequest Entry)> BeginAsync(Guid apiKey, string key) =>
        Store.BeginAsync(apiKey, IdempotencyStore.ChatScope, key, "hash", LongestRun, CancellationToken.None);

    private async Task PurgeAsync() =>
        await ActivatorUtilities.CreateInstance<PurgeExpiredRowsJob>(_bed.Services).Execute(null!, CancellationToken.None);

    private Task<List<string>> KeysAsync() =>
        _bed.QueryAsync(db => db.IdempotentRequests.OrderBy(r => r.Key).Select(r => r.Key).ToListAsync());

    [Fact]
    public async Task A_backlog_of_expired_entries_is_deleted_batch_after_batch_to_the_end()
    {
        var apiKey = Guid.NewGuid();
        const int backlog = (2 * ExpiredRowsPurge.BatchSize) + 7;
        await _bed.QueryAsync(async db =>
        {
            db.IdempotentRequests.AddRange(Enumerable.Range(0, backlog).Select(i => new IdempotentRequest
            {
                Id = Guid.NewGuid(),
                ApiKeyId = apiKey,
                Key = $"old-{i}",
                RequestHash = "hash",
                Completed = true,
                StatusCode = 200,
                ContentType = "application/json",
                ResponseBody = "an answer nobody will be sent again",
                CreatedAt = Start - Window - TimeSpan.FromHours(1),
                ExpiresAt = Start - TimeSpan.FromHours(1),
                LedgerRequestId = $"idem:{i}",
            }));
            return await db.SaveChangesAsync();
        });
        var (_, live) = await BeginAsync(apiKey, "live");
        await Store.CompleteAsync(live, 200, "application/json", "kept", CancellationToken.None);

        await PurgeAsync();

        Assert.Equal(["live"], await KeysAsync());
    }

    [Fact]
    public async Task Entries_in_their_window_and_unfinished_ones_that_may_still_run_are_kept_and_answer_as_before()
    {
        var apiKey = Guid.NewGuid();
        var (_, done) = await BeginAsync(apiKey, "done");
        await Store.CompleteAsync(done, 200, "application/json", "answer", CancellationToken.None);
        var (_, running) = await BeginAsync(apiKey, "running");
        var (_, dead) = await BeginAsync(apiKey, "dead");
        await _bed.QueryAsync(db =>
        {
            // Written under a shorter window than the run may take (settings changed since): past its window, but
            // its request may still be running, so its ledger id must stay for a retry to inherit.
            db.IdempotentRequests.Add(new IdempotentRequest
            {
                Id = Guid.NewGuid(),
                ApiKeyId = apiKey,
                Key = "short-window",
                RequestHash = "hash",
                CreatedAt = Start,
                ExpiresAt = Start + TimeSpan.FromMinutes(1),
                LedgerRequestId = "idem:short-window",
            });
            return db.SaveChangesAsync();
        });

        _bed.Clock!.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        await PurgeAsync();
        Assert.Equal(["dead", "done", "running", "short-window"], await KeysAsync());
        Assert.Equal(IdempotencyDecision.InFlight, (await BeginAsync(apiKey, "running")).Decision);

        // Past the takeover point the dead entry is still taken over, its ledger id inherited.
        _bed.Clock.Advance(LongestRun + IdempotencyStore.AbandonMargin);
        await PurgeAsync();
        Assert.Equal(["dead", "done", "running"], await KeysAsync());
        var (takeover, retry) = await BeginAsync(apiKey, "dead");
        Assert.Equal((IdempotencyDecision.Proceed, dead.LedgerRequestId), (takeover, retry.LedgerRequestId));

        // The last moment of the window still replays after a purge; the next it is gone, finished or not.
        _bed.Clock.SetUtcNow(done.ExpiresAt);
        await PurgeAsync();
        var (replay, stored) = await BeginAsync(apiKey, "done");
        Assert.Equal((IdempotencyDecision.Replay, "answer"), (replay, stored.ResponseBody));
        _bed.Clock.SetUtcNow(running.ExpiresAt + TimeSpan.FromSeconds(1));
        await PurgeAsync();
        Assert.Equal(["dead"], await KeysAsync());
    }

    [Fact]
    public async Task Used_emptied_and_expired_key_links_are_deleted_and_a_live_one_still_shows_its_key()
    {
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();
        var subscription = await _bed.AddSubscriptionAsync();
        var ended = await _bed.AddSubscriptionAsync();
        async Task<(CreatedKey Key, string Token)> LinkAsync(Guid subscriptionId, TimeSpan lifetime)
        {
            var created = await keys.CreateAsync(subscriptionId, ApiKeyKind.Secret, "k", CancellationToken.None);
            return (created, await keys.CreateRevealAsync(created, lifetime, CancellationToken.None));
        }

        var (liveKey, live) = await LinkAsync(subscription.Id, TimeSpan.FromDays(7));
        var (_, used) = await LinkAsync(subscription.Id, TimeSpan.FromDays(7));
        var (_, expiring) = await LinkAsync(subscription.Id, TimeSpan.FromHours(1));
        await LinkAsync(ended.Id, TimeSpan.FromDays(7));
        Assert.NotNull(await keys.RevealAsync(used, CancellationToken.None));
        await keys.RevokeAllAsync(ended.Id, CancellationToken.None);
        _bed.Clock!.Advance(TimeSpan.FromHours(2));

        await PurgeAsync();

        var left = await _bed.QueryAsync(db => db.KeyReveals.Select(r => r.ApiKeyId).ToListAsync());
        Assert.Equal([liveKey.Key.Id], left);
        Assert.Null(await keys.RevealAsync(expiring, CancellationToken.None));
        Assert.Equal(liveKey.Plaintext, await keys.RevealAsync(live, CancellationToken.None));
    }

    [Fact]
    public async Task Handoff_records_idle_past_their_retention_are_deleted_with_their_delivered_event_and_recent_or_undelivered_ones_kept()
    {
        var retention = TimeSpan.FromDays(90); // Handoff:ConversationRetention's default
        var subscription = await _bed.AddSubscriptionAsync();
        HandoffConversation Conversation(string name, TimeSpan idle) => new()
        {
            Id = Guid.NewGuid(), SubscriptionId = subscription.Id, Conversation = name, CreatedAt = Start - idle, UpdatedAt = Start - idle,
        };
        HandoffDelivery Delivery(HandoffConversation escalated, bool delivered) => new()
        {
            Id = Guid.NewGuid(), SubscriptionId = subscription.Id, ConversationId = escalated.Id, Payload = "{}", NextAttemptAt = escalated.UpdatedAt,
            CreatedAt = escalated.UpdatedAt, DeliveredAt = delivered ? escalated.UpdatedAt : null,
        };
        var old = Conversation("old", retention + TimeSpan.FromSeconds(1));
        var oldDelivered = Conversation("old-delivered", retention + TimeSpan.FromDays(1));
        var oldUndelivered = Conversation("old-undelivered", retention + TimeSpan.FromDays(1));
        var recent = Conversation("recent", retention - TimeSpan.FromHours(1));
        await _bed.QueryAsync(db =>
        {
            db.HandoffConversations.AddRange(old, oldDelivered, oldUndelivered, recent);
            db.HandoffDeliveries.AddRange(Delivery(oldDelivered, delivered: true), Delivery(oldUndelivered, delivered: false));
            return db.SaveChangesAsync();
        });

        await PurgeAsync();

        Assert.Equal(["old-undelivered", "recent"], await _bed.QueryAsync(db => db.HandoffConversations.OrderBy(c => c.Conversation).Select(c => c.Conversation).ToListAsync()));
        Assert.Equal([oldUndelivered.Id], await _bed.QueryAsync(db => db.HandoffDeliveries.Select(d => d.ConversationId).ToListAsync()));

        // Idle past its retention in turn, the recent one goes too.
        _bed.Clock!.Advance(TimeSpan.FromHours(2));
        await PurgeAsync();
        Assert.Equal(["old-undelivered"], await _bed.QueryAsync(db => db.HandoffConversations.Select(c => c.Conversation).ToListAsync()));
    }

    /// <summary>A signed-out session is refused by its cookie's own expiry once that has passed: its row goes then, not before.</summary>
    [Fact]
    public async Task Console_sign_outs_are_deleted_once_their_cookie_has_expired()
    {
        var (expired, live) = (Guid.NewGuid(), Guid.NewGuid());
        await _bed.QueryAsync(db =>
        {
            db.ConsoleSignOuts.AddRange(
                new CmpWaldurAdapter.Web.ConsoleSignOut { SessionId = expired, SignedOutAt = Start, ExpiresAt = Start + TimeSpan.FromHours(1) },
                new CmpWaldurAdapter.Web.ConsoleSignOut { SessionId = live, SignedOutAt = Start, ExpiresAt = Start + TimeSpan.FromHours(3) });
            return db.SaveChangesAsync();
        });

        _bed.Clock!.Advance(TimeSpan.FromHours(2));
        await PurgeAsync();

        Assert.Equal([live], await _bed.QueryAsync(db => db.ConsoleSignOuts.Select(s => s.SessionId).ToListAsync()));
    }

    /// <summary>
    /// A named lease given up, or run out a day ago (its holder died), is deleted: one per resource and kind of work would
    /// stay for good. A held one and one run out within the day stay, and a deleted name is taken again by exactly one of
    /// racing takers, with no error logged.
    /// </summary>
    [Fact]
    public async Task Named_leases_given_up_or_run_out_a_day_ago_are_deleted_and_their_names_taken_anew_by_one_taker()
    {
        var leases = _bed.Services.GetRequiredService<DatabaseLeases>();
        var released = await leases.TryAcquireWaitingAsync("report:released", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None);
        await leases.ReleaseAsync("report:released", released!);
        Assert.NotNull(await leases.TryAcquireWaitingAsync("report:crashed", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None));
        _bed.Clock!.Advance(ExpiredRowsPurge.LeaseRetention + TimeSpan.FromHours(1));
        Assert.NotNull(await leases.TryAcquireWaitingAsync("report:ran-out", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None));
        await using var held = await leases.TryHoldAsync("report:held", TimeSpan.FromDays(2), CancellationToken.None);
        Assert.NotNull(held);
        _bed.Clock.Advance(TimeSpan.FromHours(1));

        await PurgeAsync();

        Assert.Equal(["report:held", "report:ran-out"], await _bed.QueryAsync(db => db.Leases.OrderBy(l => l.Name).Select(l => l.Name).ToListAsync()));
        var takers = Enumerable.Range(0, 8).Select(_ => new DatabaseLeases(_bed.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), new(), _bed.Clock));
        var won = await Task.WhenAll(takers.Select(t => Task.Run(() => t.TryAcquireWaitingAsync("report:released", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None))));
        Assert.Single(won, w => w is not null);
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }
}

public sealed class ExpiredRowsPurgeOnSqliteTests() : ExpiredRowsPurgeTests(DatabaseProvider.Sqlite);

public sealed class ExpiredRowsPurgeOnPostgresTests() : ExpiredRowsPurgeTests(DatabaseProvider.Postgres);

/// <summary>The server schedules the purge every <c>Database:PurgeInterval</c>, clustered on PostgreSQL like the other jobs.</summary>
public sealed class ExpiredRowsPurgeScheduleTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Postgres);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task The_purge_runs_every_Database_PurgeInterval_and_deletes_expired_entries_when_fired()
    {
        _bed.Settings["Database:PurgeInterval"] = "00:05:00";
        var server = await _bed.StartServerAsync();
        var scheduler = await server.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
        await _bed.QueryAsync(db =>
        {
            db.IdempotentRequests.Add(new IdempotentRequest
            {
                Id = Guid.NewGuid(),
                ApiKeyId = Guid.NewGuid(),
                Key = "old",
                RequestHash = "hash",
                Completed = true,
                CreatedAt = DateTimeOffset.UtcNow - TimeSpan.FromDays(2),
                ExpiresAt = DateTimeOffset.UtcNow - TimeSpan.FromDays(1),
                LedgerRequestId = "idem:old",
            });
            return db.SaveChangesAsync();
        });

        var trigger = (ISimpleTrigger)(await scheduler.GetTrigger(new TriggerKey(PurgeExpiredRowsJob.Key.Name + "-trigger", PurgeExpiredRowsJob.Key.Group)))!;
        await scheduler.TriggerJob(PurgeExpiredRowsJob.Key);
        await Eventually.TrueAsync(async () => !await _bed.QueryAsync(db => db.IdempotentRequests.AnyAsync()), because: "the fired job deletes the expired entry");

        Assert.Equal(TimeSpan.FromMinutes(5), trigger.RepeatInterval);
    }
}
