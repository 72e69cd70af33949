using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

/// <summary>With events on, pending orders are still polled now and then: an order whose event never came is done all the same.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class FallbackPollTests : IAsyncLifetime
{
    private readonly RabbitMqBroker _broker = new();
    private OrderTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        _broker.ServeEvents(_bed.Waldur, _bed.Settings);
        _bed.Settings["Events:FallbackPollInterval"] = "00:00:02";
        _server = await _bed.StartServerAsync();
        await Eventually.TrueAsync(() => _server.Services.GetRequiredService<EventChannelStatus>().ConnectedQueues == 2, TimeSpan.FromSeconds(20), "both queues are subscribed");
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _broker.Dispose();
    }

    [Fact]
    public async Task An_order_whose_event_never_came_is_done_by_the_fallback_poll()
    {
        // Placed in Waldur, announced on no queue (the broker lost the message, or Waldur dropped the subscription).
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(30), "the fallback poll found the order");
    }
}
