using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

public sealed class MetricsTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Metrics_are_served_in_prometheus_format_with_order_and_upstream_counts()
    {
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503, times: 3);
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));
        using var client = server.CreateClient();

        var text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await client.GetStringAsync("/metrics");
            return text.Contains("cmp_orders_processed_total{type=\"Create\",outcome=\"Completed\"} 1", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), "the completed order is counted");

        Assert.Contains("cmp_orders_processed_total{type=\"Create\",outcome=\"Deferred\"} 1", text);
        Assert.Contains("cmp_upstream_requests_total{upstream=\"waldur\",outcome=\"server_error\"} 3", text);
        Assert.Matches(@"cmp_upstream_requests_total\{upstream=""waldur"",outcome=""success""\} [1-9]", text);
        Assert.Contains("cmp_order_event_to_done_seconds_count 1", text);
        Assert.Contains("# TYPE cmp_order_event_to_done_seconds histogram", text);
    }
}
