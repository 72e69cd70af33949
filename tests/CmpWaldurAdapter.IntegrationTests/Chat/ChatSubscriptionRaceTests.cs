using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
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
