using System.Net;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// A message's retrieval runs while its credits are held, and is dropped when the hold is refused: the adapter's own
/// decision, which the upstream metrics count as discarded, never as canceled (no client left). The ledger's hold
/// answers here only once the retrieval has reached RAGFlow, which answers slowly, so it is dropped mid-call.
/// </summary>
public sealed class ChatRefusedHoldTests : IAsyncLifetime
{
    private ChatGatewayBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatGatewayBed.StartAsync(services: services =>
        services.Replace(ServiceDescriptor.Singleton<IChatCredits>(sp => new HoldAfterRetrievalStarts(ActivatorUtilities.CreateInstance<LedgerChatCredits>(sp), () => _bed.Upstream.Retrievals))));

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_retrieval_dropped_because_the_hold_was_refused_is_counted_as_discarded_not_as_canceled()
    {
        var (_, key) = await _bed.SubscribeAsync(credits: 0);
        _bed.Upstream.RetrievalDelay = TimeSpan.FromSeconds(30);
        using var http = _bed.Server.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.PaymentRequired, response.StatusCode);
        Assert.Equal(1, _bed.Upstream.Retrievals);
        var ragflow = (await http.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{upstream=\"ragflow\"", StringComparison.Ordinal)).ToList();
        Assert.Equal(["cmp_upstream_requests_total{upstream=\"ragflow\",outcome=\"discarded\"} 1"], ragflow);
    }

    /// <summary>The ledger's hold, answered once a retrieval has reached RAGFlow.</summary>
    private sealed class HoldAfterRetrievalStarts(IChatCredits ledger, Func<int> retrievals) : IChatCredits
    {
        public async Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken)
        {
            await Eventually.TrueAsync(() => retrievals() > 0, TimeSpan.FromSeconds(10), "the retrieval reaches RAGFlow while the credits are held");
            return await ledger.HoldAsync(subscription, requestId, key, cancellationToken);
        }

        public Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken) => ledger.SettleAsync(hold, cancellationToken);

        public Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken) => ledger.ReleaseAsync(hold, cancellationToken);
    }
}
