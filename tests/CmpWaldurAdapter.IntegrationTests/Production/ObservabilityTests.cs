using System.Net;
using System.Net.Http.Headers;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;

namespace CmpWaldurAdapter.IntegrationTests.Production;

/// <summary>Request and order ids on the log lines, and the metrics the adapter promises operators.</summary>
public sealed class ObservabilityTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Every_request_gets_an_id_echoed_in_the_response_and_on_its_log_lines()
    {
        var server = await _bed.StartServerAsync();
        using var client = server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "sk_live_unknown");

        using var traced = new HttpRequestMessage(HttpMethod.Get, "/v1/usage") { Headers = { { RequestIdMiddleware.Header, "trace-4711.a" } } };
        var response = await client.SendAsync(traced);
        using var injected = new HttpRequestMessage(HttpMethod.Get, "/v1/usage") { Headers = { { RequestIdMiddleware.Header, "x\" forged=1 " + new string('y', 100) } } };
        var replaced = await client.SendAsync(injected);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("trace-4711.a", response.Headers.GetValues(RequestIdMiddleware.Header).Single());
        var generated = replaced.Headers.GetValues(RequestIdMiddleware.Header).Single();
        Assert.DoesNotContain("forged", generated);
        Assert.False(string.IsNullOrWhiteSpace(generated));
        await Eventually.TrueAsync(() => RequestLines(generated).Any(), TimeSpan.FromSeconds(5), "the request log line carries the generated id");
        var lines = RequestLines("trace-4711.a").ToList();
        Assert.Contains(lines, e => e.RenderMessage().Contains("/v1/usage", StringComparison.Ordinal));
        Assert.All(_bed.Logs.Events.Where(e => e.Properties.TryGetValue("RequestPath", out var path) && path.ToString().Contains("/v1/usage", StringComparison.Ordinal)),
            e => Assert.True(e.Properties.ContainsKey(RequestIdMiddleware.LogProperty), e.RenderMessage()));
    }

    [Fact]
    public async Task Log_lines_written_while_an_order_is_processed_carry_its_id()
    {
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503, times: 3);

        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));

        var processing = _bed.Logs.Events.Where(e => e.Properties.TryGetValue("SourceContext", out var source) && source.ToString().Contains("OrderProcessor", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(processing);
        Assert.All(processing, e => Assert.Equal(order.ToString(), Scalar(e, "OrderUuid")));
    }

    [Fact]
    public async Task Chat_requests_are_counted_by_status_with_a_latency_histogram()
    {
        var server = await _bed.StartServerAsync();
        var metrics = server.Services.GetRequiredService<AdapterMetrics>();

        metrics.ObserveChatRequest(200, TimeSpan.FromMilliseconds(30));
        metrics.ObserveChatRequest(200, TimeSpan.FromMilliseconds(70));
        metrics.ObserveChatRequest(402, TimeSpan.FromMilliseconds(2));
        using var client = server.CreateClient();
        var text = await client.GetStringAsync("/metrics");

        Assert.Contains("cmp_chat_requests_total{status=\"200\"} 2", text);
        Assert.Contains("cmp_chat_requests_total{status=\"402\"} 1", text);
        Assert.Contains("cmp_chat_request_duration_seconds_count{status=\"200\"} 2", text);
        Assert.Contains("cmp_chat_request_duration_seconds_bucket{status=\"200\",le=\"0.05\"} 1", text);
        Assert.Contains("cmp_stomp_connected_queues", text);
        Assert.Contains("cmp_stomp_reconnects_total", text);
    }

    private IEnumerable<LogEvent> RequestLines(string requestId) =>
        _bed.Logs.Events.Where(e => Scalar(e, RequestIdMiddleware.LogProperty) == requestId);

    private static string? Scalar(LogEvent logEvent, string property) =>
        logEvent.Properties.TryGetValue(property, out var value) ? (value as ScalarValue)?.Value?.ToString() : null;
}
