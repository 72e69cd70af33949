using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// A plain (non-streamed) run is bounded by <c>Chat:RunTimeout</c> alone, as a streamed one is: an agent that calls
/// tools or waits on a slow model may answer long after Langflow's per-attempt timeout, which bounds its quick calls.
/// </summary>
public sealed class ChatRunTimeoutTests : IAsyncLifetime
{
    private ChatGatewayBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatGatewayBed.StartAsync(configure: settings =>
    {
        settings["Langflow:AttemptTimeout"] = "00:00:00.500";
        // Far above the slow run's 1.5 s, so a loaded machine (a CI run beside builds) never makes it a timeout.
        settings["Chat:RunTimeout"] = "00:00:08";
    });

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_plain_run_slower_than_langflows_attempt_timeout_is_answered_and_charged()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.RunDelay = TimeSpan.FromSeconds(1.5);
        using var http = Client(key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal("echo: Hello", JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal((1, 1), (_bed.Upstream.Runs, _bed.Upstream.Completed));
        await Eventually.TrueAsync(async () => (await BalanceAsync(subscription.CustomerId)) == (8L, 0L), TimeSpan.FromSeconds(5), "the answer is charged");
    }

    [Fact]
    public async Task A_plain_run_past_chat_run_timeout_is_a_503_cancelled_upstream_and_charges_nothing()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.RunDelay = TimeSpan.FromSeconds(30);
        using var http = Client(key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, body);
        Assert.Equal("agent_unavailable", JsonNode.Parse(body)!["error"]!["code"]!.GetValue<string>());
        Assert.True(response.Headers.RetryAfter is not null, "a 503 says when to retry");
        await Eventually.TrueAsync(() => _bed.Upstream.Aborted == 1, TimeSpan.FromSeconds(5), "the adapter cancels Langflow's run");
        Assert.Equal(0, _bed.Upstream.Completed);
        await Eventually.TrueAsync(async () => (await BalanceAsync(subscription.CustomerId)) == (10L, 0L), TimeSpan.FromSeconds(5), "the hold is released");
    }

    [Fact]
    public async Task A_plain_run_cut_by_chat_run_timeout_is_counted_as_a_langflow_timeout_not_as_canceled()
    {
        var (_, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.RunDelay = TimeSpan.FromSeconds(30);
        using var http = Client(key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        // The agent was too slow: an operator watching Langflow's timeouts sees it (a client who left is "canceled", see ChatDisconnectTests).
        var langflow = (await http.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{upstream=\"langflow\"", StringComparison.Ordinal)).ToList();
        Assert.Contains("cmp_upstream_requests_total{upstream=\"langflow\",outcome=\"timeout\"} 1", langflow);
        Assert.DoesNotContain(langflow, l => l.Contains("outcome=\"canceled\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_stream_cut_by_chat_run_timeout_after_langflows_headers_is_counted_as_a_langflow_timeout_not_as_a_success()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        // Langflow answers at once and then trickles: the run is past Chat:RunTimeout long before its end.
        _bed.Upstream.TokenDelay = TimeSpan.FromMilliseconds(300);
        _bed.Upstream.StreamTokens = 100;
        using var http = Client(key);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"message":"Hello"}""") };
        var (status, lines, broken) = await ChatTestBed.ReadStreamAsync(http, request);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("nothing was charged", lines[^1], StringComparison.Ordinal); // the error event: the run was cut mid-stream
        Assert.True(broken, "the connection is aborted after the error event");
        await Eventually.TrueAsync(() => _bed.Upstream.Aborted == 1, TimeSpan.FromSeconds(5), "the adapter cancels Langflow's run");
        await Eventually.TrueAsync(async () => (await BalanceAsync(subscription.CustomerId)) == (10L, 0L), TimeSpan.FromSeconds(5), "the hold is released");
        // Counted when the stream ended, once: Langflow's 200 was no answer.
        var langflow = (await http.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{upstream=\"langflow\"", StringComparison.Ordinal)).ToList();
        Assert.Equal(["cmp_upstream_requests_total{upstream=\"langflow\",outcome=\"timeout\"} 1"], langflow);
    }

    private HttpClient Client(string key)
    {
        var http = _bed.Server.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", key);
        return http;
    }

    private async Task<(long Balance, long Reserved)> BalanceAsync(Guid customer)
    {
        var balance = await _bed.Server.Services.GetRequiredService<CreditLedger>().BalanceAsync(customer);
        return (balance.Balance, balance.Reserved);
    }
}
