using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Faults;

/// <summary>Waldur answering nothing but 503 and 429 for a while, under the running server: orders wait, none errs, each is done once.</summary>
public sealed class WaldurStormTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Theory]
    [InlineData(503)]
    [InlineData(429)]
    public async Task A_storm_of_errors_on_every_waldur_call_delays_orders_and_never_errs_or_repeats_them(int status)
    {
        var server = await _bed.StartServerAsync();
        var inbox = server.Services.GetRequiredService<OrderInbox>();
        var orders = Enumerable.Range(0, 8).Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes($"Agent {i}"))).ToList();
        foreach (var method in new[] { "GET", "POST" })
        {
            _bed.Waldur.Break(method, "/api/.*", status);
        }

        foreach (var order in orders)
        {
            await inbox.EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        }

        await Eventually.TrueAsync(() => _bed.Waldur.Count("GET", "/api/marketplace-orders/.*/") >= 3 * orders.Count, TimeSpan.FromSeconds(20), "the storm is met with retries");
        Assert.All(orders, o => Assert.Equal("pending-provider", _bed.Waldur.OrderState(o)));
        _bed.Waldur.Heal();

        await Eventually.TrueAsync(() => orders.All(o => _bed.Waldur.OrderState(o) == "done"), TimeSpan.FromSeconds(30), "every order is done after the storm");
        Assert.All(orders, o => Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{o}/set_state_done/")));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/reject_by_provider/"));
    }
}
