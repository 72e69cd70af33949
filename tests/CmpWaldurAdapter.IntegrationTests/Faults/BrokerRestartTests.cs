using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Events;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Faults;

/// <summary>RabbitMQ restarted while a stream of order messages is being processed (the real broker).</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class BrokerRestartTests : IAsyncLifetime
{
    private readonly RabbitMqBroker _broker = new();
    private readonly ConcurrentDictionary<string, string> _queues = new();
    private OrderTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        _broker.ServeEvents(_bed.Waldur, _bed.Settings, _queues);
        _server = await _bed.StartServerAsync();
        await Eventually.TrueAsync(() => Status.ConnectedQueues == 2, TimeSpan.FromSeconds(20), "both queues are subscribed");
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _broker.Dispose();
    }

    private EventChannelStatus Status => _server.Services.GetRequiredService<EventChannelStatus>();

    [Fact]
    public async Task Orders_announced_before_during_and_after_a_broker_restart_are_all_done_once()
    {
        var vhost = _bed.Waldur.UserUuid.ToString("N");
        var before = Place(10, "Before");
        foreach (var order in before)
        {
            await PublishAsync(vhost, order);
        }

        // Mid-stream: the broker goes down while those are processed; orders placed meanwhile get no message at all.
        var restart = _broker.RestartAsync();
        var during = Place(5, "During");
        await restart;
        await Eventually.TrueAsync(() => Status.ConnectedQueues == 2, TimeSpan.FromSeconds(30), "both queues are subscribed again");
        var after = Place(10, "After");
        foreach (var order in after.Concat(before.Take(3))) // and some redeliveries of old messages
        {
            await PublishAsync(vhost, order);
        }

        var all = before.Concat(during).Concat(after).ToList();
        await Eventually.TrueAsync(() => all.All(o => _bed.Waldur.OrderState(o) == "done"), TimeSpan.FromSeconds(45), "every order is done (the catch-up poll finds the unannounced ones)");
        Assert.All(all, o => Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{o}/set_state_done/")));
        Assert.Equal(all.Count, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]));
        Assert.True(Status.Reconnects < 20, $"no reconnect storm ({Status.Reconnects} reconnects)");
    }

    private List<Guid> Place(int count, string name) =>
        Enumerable.Range(0, count).Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes($"{name} {i}"))).ToList();

    private Task PublishAsync(string vhost, Guid order) =>
        _broker.PublishAsync(vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-provider" });
}
