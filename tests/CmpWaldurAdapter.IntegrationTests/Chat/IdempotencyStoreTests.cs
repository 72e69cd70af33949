using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// The store under the chat and automation endpoints, on the test clock: an unfinished entry is in flight until
/// the caller's longest run and <see cref="IdempotencyStore.AbandonMargin"/> have passed, then exactly one of any
/// number of racing retries takes it over; a late finish of the dead attempt changes nothing.
/// </summary>
public abstract class IdempotencyStoreTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 5, 4, 10, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan LongestRun = TimeSpan.FromMinutes(2);

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

    [Fact]
    public async Task An_unfinished_entry_is_taken_over_only_past_the_longest_run_and_the_margin_and_its_late_finish_is_not_stored()
    {
        var apiKey = Guid.NewGuid();
        var (_, dead) = await BeginAsync(apiKey, "k");

        _bed.Clock!.Advance(LongestRun + IdempotencyStore.AbandonMargin);
        Assert.Equal(IdempotencyDecision.InFlight, (await BeginAsync(apiKey, "k")).Decision);

        _bed.Clock.Advance(TimeSpan.FromSeconds(1));
        var (decision, retry) = await BeginAsync(apiKey, "k");
        Assert.Equal(IdempotencyDecision.Proceed, decision);
        Assert.NotEqual(dead.Id, retry.Id);

        // The dead attempt was only slow: its answer and its abandon touch its own entry, which is gone.
        await Store.CompleteAsync(dead, 200, "application/json", "stale", CancellationToken.None);
        await Store.AbandonAsync(dead);
        Assert.Equal(IdempotencyDecision.InFlight, (await BeginAsync(apiKey, "k")).Decision);

        await Store.CompleteAsync(retry, 200, "application/json", "fresh", CancellationToken.None);
        _bed.Clock.Advance(TimeSpan.FromHours(1));
        var (replay, stored) = await BeginAsync(apiKey, "k");
        Assert.Equal((IdempotencyDecision.Replay, "fresh"), (replay, stored.ResponseBody));
    }

    [Fact]
    public async Task Of_many_retries_racing_for_an_abandoned_entry_exactly_one_takes_it_over()
    {
        var apiKey = Guid.NewGuid();
        for (var round = 0; round < 5; round++)
        {
            var key = $"race-{round}";
            Assert.Equal(IdempotencyDecision.Proceed, (await BeginAsync(apiKey, key)).Decision);
            _bed.Clock!.Advance(LongestRun + IdempotencyStore.AbandonMargin + TimeSpan.FromSeconds(1));

            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var retries = Enumerable.Range(0, 12).Select(_ => Task.Run(async () =>
            {
                await go.Task;
                return (await BeginAsync(apiKey, key)).Decision;
            })).ToList();
            go.SetResult();
            var decisions = await Task.WhenAll(retries);

            Assert.Single(decisions, d => d == IdempotencyDecision.Proceed);
            Assert.All(decisions.Where(d => d != IdempotencyDecision.Proceed), d => Assert.Equal(IdempotencyDecision.InFlight, d));
        }
    }

    [Fact]
    public async Task A_finished_entry_is_replayed_however_old_within_the_window_another_body_is_a_mismatch_and_neither_logs_an_error()
    {
        var apiKey = Guid.NewGuid();
        var (_, entry) = await BeginAsync(apiKey, "done");
        await Store.CompleteAsync(entry, 200, "application/json", "answer", CancellationToken.None);
        var (_, unfinished) = await BeginAsync(apiKey, "dead");

        _bed.Clock!.Advance(TimeSpan.FromHours(23));

        Assert.Equal(IdempotencyDecision.Replay, (await BeginAsync(apiKey, "done")).Decision);
        Assert.Equal(IdempotencyDecision.Mismatch, (await Store.BeginAsync(apiKey, IdempotencyStore.ChatScope, "dead", "other hash", LongestRun, CancellationToken.None)).Decision);
        Assert.Equal(unfinished.Id, (await Store.BeginAsync(apiKey, IdempotencyStore.ChatScope, "dead", "other hash", LongestRun, CancellationToken.None)).Entry.Id);
        // A retry with its key is what the key is for: answered from the store, with nothing logged as a database error.
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }
}

public sealed class IdempotencyStoreOnSqliteTests() : IdempotencyStoreTests(DatabaseProvider.Sqlite);

public sealed class IdempotencyStoreOnPostgresTests() : IdempotencyStoreTests(DatabaseProvider.Postgres);
