using System.Net;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
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

    /// <summary>What changes in the database once the retrieval has started and before the (first) hold.</summary>
    private Func<Task>? _beforeHold;

    public async Task InitializeAsync() => _bed = await ChatGatewayBed.StartAsync(services: services =>
        services.Replace(ServiceDescriptor.Singleton<IChatCredits>(sp => new HoldAfterRetrievalStarts(ActivatorUtilities.CreateInstance<LedgerChatCredits>(sp), () => _bed.Upstream.Retrievals, () => Interlocked.Exchange(ref _beforeHold, null)))));

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

    [Fact]
    public async Task A_retrieval_dropped_because_the_hold_caught_a_revoked_key_is_counted_as_discarded()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.RetrievalDelay = TimeSpan.FromSeconds(30);
        // Revoked after the message was authenticated: the hold, which checks the key in the database, catches it.
        _beforeHold = () => UpdateAsync(db => db.ApiKeys.Where(k => k.SubscriptionId == subscription.Id)
            .ExecuteUpdateAsync(set => set.SetProperty(k => k.RevokedAt, DateTimeOffset.UtcNow)));
        using var http = _bed.Server.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, _bed.Upstream.Retrievals);
        Assert.Equal(0, _bed.Upstream.Runs);
        Assert.Equal(["discarded 1"], await RagflowCountsAsync(http));
        Assert.Equal((10L, 0L), await BalanceAsync(subscription));
    }

    [Fact]
    public async Task A_retrieval_dropped_because_the_subscription_changed_before_the_hold_is_counted_as_discarded_and_the_message_retrieves_anew()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.RetrievalDelay = TimeSpan.FromSeconds(30);
        // Changed (e.g. reconfigured in Waldur) after the message was authenticated: the hold sees the newer row, the
        // retrieval built from the old one is dropped, and the message is run for the new one.
        _beforeHold = async () =>
        {
            _bed.Upstream.RetrievalDelay = TimeSpan.Zero;
            await UpdateAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id)
                .ExecuteUpdateAsync(set => set.SetProperty(s => s.Version, s => s.Version + 1)));
        };
        using var http = _bed.Server.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, _bed.Upstream.Retrievals);
        Assert.Equal(1, _bed.Upstream.Runs);
        Assert.Equal(["discarded 1", "success 1"], await RagflowCountsAsync(http));
        // The charge is written while the answer is sent (AnswerSettlements): read the balance once it has been.
        await _bed.Server.Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(8L, (await BalanceAsync(subscription)).Balance);
    }

    private async Task UpdateAsync(Func<AdapterDbContext, Task<int>> update)
    {
        await using var db = await _bed.Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        Assert.Equal(1, await update(db));
    }

    private async Task<(long Balance, long Reserved)> BalanceAsync(Subscription subscription)
    {
        var balance = await _bed.Server.Services.GetRequiredService<CreditLedger>().BalanceAsync(subscription.CustomerId);
        return (balance.Balance, balance.Reserved);
    }

    /// <summary>RAGFlow's calls counted, by outcome (in order of outcome).</summary>
    private static async Task<List<string>> RagflowCountsAsync(HttpClient http) =>
        [.. System.Text.RegularExpressions.Regex.Matches(await http.GetStringAsync("/metrics"), @"^cmp_upstream_requests_total\{upstream=""ragflow"",outcome=""(\w+)""\} (\d+)$", System.Text.RegularExpressions.RegexOptions.Multiline)
            .Select(m => $"{m.Groups[1].Value} {m.Groups[2].Value}").Order(StringComparer.Ordinal)];
}
