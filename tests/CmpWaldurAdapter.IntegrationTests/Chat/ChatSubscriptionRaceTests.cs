using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// A subscription that changes while a message is being accepted: Waldur pauses it, restores it and pauses it again
/// around the hold and its retry. The answer is a 409 `subscription_changed` with Retry-After, which OpenAI's SDKs
/// retry (they never retry a 403), and nothing is held or charged.
/// </summary>
public sealed class ChatSubscriptionRaceTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync(
        (_, _) => { },
        services => services.AddSingleton<IChatCredits>(provider => new FlappingCredits(
            ActivatorUtilities.CreateInstance<LedgerChatCredits>(provider), provider.GetRequiredService<IDbContextFactory<AdapterDbContext>>())));

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_subscription_paused_and_restored_around_the_hold_is_a_409_to_retry_and_charges_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        var flapping = (FlappingCredits)_bed.Services.GetRequiredService<IChatCredits>();
        using var http = _bed.Http(me.Key);
        flapping.Flap(me.Subscription.Id);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.Conflict, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter!.Delta);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(("invalid_request_error", "subscription_changed"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.Equal(2, flapping.Holds);
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Subscription.CustomerId));
        Assert.Empty(_bed.Tenants.Langflow.Runs);

        // Settled down (restored), the same request is answered.
        await flapping.SetPausedAsync(me.Subscription.Id, false);
        using var retried = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
    }

    /// <summary>The real credits, with the subscription paused just before each hold of a flap and restored just after the first.</summary>
    private sealed class FlappingCredits(IChatCredits inner, IDbContextFactory<AdapterDbContext> dbs) : IChatCredits
    {
        private Guid? _flapping;
        private int _holds;

        public int Holds => Volatile.Read(ref _holds);

        public void Flap(Guid subscriptionId) => _flapping = subscriptionId;

        public async Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken)
        {
            if (_flapping != subscription.Id)
            {
                return await inner.HoldAsync(subscription, requestId, key, cancellationToken);
            }

            var hold = Interlocked.Increment(ref _holds);
            await SetPausedAsync(subscription.Id, true);
            var attempt = await inner.HoldAsync(subscription, requestId, key, cancellationToken);
            if (hold == 1)
            {
                await SetPausedAsync(subscription.Id, false); // restored before the adapter reads it again
            }
            else
            {
                _flapping = null;
            }

            return attempt;
        }

        public Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken) => inner.SettleAsync(hold, cancellationToken);

        public Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken) => inner.ReleaseAsync(hold, cancellationToken);

        public async Task SetPausedAsync(Guid subscriptionId, bool paused)
        {
            await using var db = await dbs.CreateDbContextAsync();
            await db.Subscriptions.Where(s => s.Id == subscriptionId).ExecuteUpdateAsync(set => set
                .SetProperty(s => s.Paused, paused)
                .SetProperty(s => s.Version, s => s.Version + 1));
        }
    }
}

/// <summary>
/// A hold that sees a newer subscription row sends the message back to the database to authenticate again; when that
/// fails (here: the client leaves just then) the hold is given back at once, not left for the sweeper.
/// </summary>
public sealed class ChatStaleHoldTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync(
        (_, _) => { },
        services => services.AddSingleton<IChatCredits>(provider => new StaleCredits(ActivatorUtilities.CreateInstance<LedgerChatCredits>(provider))));

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_client_leaving_while_a_stale_hold_authenticates_again_gets_its_credits_back_at_once()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        var stale = (StaleCredits)_bed.Services.GetRequiredService<IChatCredits>();
        using var http = _bed.Http(me.Key);
        using var leave = new CancellationTokenSource();

        var post = http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""), leave.Token);
        await stale.Held.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => post);

        Assert.True(await stale.SawLeave.Task.WaitAsync(TimeSpan.FromSeconds(10)), "the server saw the client leave");
        await Eventually.TrueAsync(async () => (await _bed.LedgerAsync(me.Customer)).Reserved == 0, TimeSpan.FromSeconds(5), "the hold is released");
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    /// <summary>The real credits, whose hold reports a newer subscription row and returns only once the client has left.</summary>
    private sealed class StaleCredits(IChatCredits inner) : IChatCredits
    {
        public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource<bool> SawLeave { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken)
        {
            var attempt = await inner.HoldAsync(subscription, requestId, key, CancellationToken.None);
            Held.TrySetResult();
            await Task.Delay(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            SawLeave.TrySetResult(cancellationToken.IsCancellationRequested);
            return attempt with { SubscriptionVersion = attempt.SubscriptionVersion + 1 };
        }

        public Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken) => inner.SettleAsync(hold, cancellationToken);

        public Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken) => inner.ReleaseAsync(hold, cancellationToken);
    }
}
