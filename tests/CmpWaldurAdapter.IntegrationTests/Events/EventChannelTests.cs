using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

/// <summary>
/// End to end with the real RabbitMQ web-STOMP broker: the adapter registers its event channel with a
/// WireMock Waldur, subscribes to the queue Waldur "created", and reacts to published messages.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class EventChannelTests : IAsyncLifetime
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

    private string Vhost => _bed.Waldur.UserUuid.ToString("N");

    [Fact]
    public async Task The_channel_is_registered_through_waldurs_api_for_orders_and_resources()
    {
        Assert.Equal(1, _bed.Waldur.Count("POST", "/api/marketplace-site-agent-identities/"));
        Assert.Equal(2, _bed.Waldur.Count("POST", "/api/marketplace-site-agent-identities/.*/register_event_subscription/"));
        Assert.Equal(2, _bed.Waldur.Count("POST", "/api/event-subscriptions/.*/create_queue/"));
        // The management API refreshes its statistics every few seconds.
        await Eventually.TrueAsync(async () => await _broker.ConsumerCountAsync(Vhost, _queues["order"]) == 1
            && await _broker.ConsumerCountAsync(Vhost, _queues["resource"]) == 1, TimeSpan.FromSeconds(15), "one consumer per queue");

        using var client = _server.CreateClient();
        var status = System.Text.Json.Nodes.JsonNode.Parse(await client.GetStringAsync("/status"))!;
        Assert.Equal("healthy", status["checks"]!["events"]!.GetValue<string>());
    }

    [Fact]
    public async Task When_waldur_drops_the_event_subscriptions_the_queues_are_registered_again_and_events_flow()
    {
        var dropped = new Dictionary<string, string>(_queues);
        _bed.Waldur.DropEventSubscriptions();
        foreach (var queue in dropped.Values)
        {
            await _broker.RemoveQueueAsync(Vhost, queue.Split('_')[1], queue);
        }

        await Eventually.TrueAsync(() => _queues["order"] != dropped["order"] && _queues["resource"] != dropped["resource"], TimeSpan.FromSeconds(30), "both queues are registered again");
        await Eventually.TrueAsync(() => Status.ConnectedQueues == 2, TimeSpan.FromSeconds(20), "and listened to");
        Assert.Equal(4, _bed.Waldur.Count("POST", "/api/marketplace-site-agent-identities/.*/register_event_subscription/"));
        Assert.Equal(1, _bed.Waldur.Count("POST", "/api/marketplace-site-agent-identities/"));
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());

        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString("N"), ["order_state"] = "pending-provider" });

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "the event on the new queue drives the order to done");
    }

    [Fact]
    public async Task A_message_on_the_order_queue_makes_the_order_done()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());

        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString("N"), ["order_state"] = "pending-provider" });

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "the event drives the order to done");
        Assert.True(Status.Messages >= 1);
    }

    [Fact]
    public async Task Subscribed_queues_and_messages_by_object_type_are_counted_in_metrics()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-provider" });
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));
        await _broker.PublishAsync(Vhost, _queues["resource"], new JsonObject { ["resource_uuid"] = _bed.Waldur.ResourceOf(order).ToString() });
        await Eventually.TrueAsync(() => Status.Messages == 2, TimeSpan.FromSeconds(10));
        using var http = _server.CreateClient();

        var metrics = (await http.GetStringAsync("/metrics")).Split('\n');

        Assert.Contains("cmp_stomp_connected_queues 2", metrics);
        Assert.Contains("cmp_stomp_reconnects_total 0", metrics);
        Assert.Equal(
            ["cmp_stomp_messages_total{object_type=\"order\"} 1", "cmp_stomp_messages_total{object_type=\"resource\"} 1"],
            metrics.Where(l => l.StartsWith("cmp_stomp_messages_total{", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Messages_about_states_that_are_not_the_providers_turn_are_ignored()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes(), state: "pending-consumer");

        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-consumer" });
        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["not"] = "an order event" });
        await Eventually.TrueAsync(() => Status.Messages >= 2, TimeSpan.FromSeconds(10));

        Assert.Equal(0, _bed.Waldur.Count("GET", $"/api/marketplace-orders/{order}/"));
        Assert.Equal(2, Status.ConnectedQueues);
    }

    [Fact]
    public async Task A_resource_message_updates_the_paused_state_of_the_subscription()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-provider" });
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));
        var resource = _bed.Waldur.ResourceOf(order);

        _bed.Waldur.SetResourceFlags(resource, paused: true, downscaled: false);
        await _broker.PublishAsync(Vhost, _queues["resource"], new JsonObject { ["resource_uuid"] = resource.ToString() });

        await Eventually.TrueAsync(async () => (await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).Paused, TimeSpan.FromSeconds(10), "the subscription is paused");
        Assert.False((await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).IsServable);
    }

    [Fact]
    public async Task After_a_broker_restart_the_adapter_reconnects_and_processes_new_messages()
    {
        await _broker.RestartAsync();

        await Eventually.TrueAsync(() => Status.Reconnects >= 2 && Status.ConnectedQueues == 2, TimeSpan.FromSeconds(30), "both queues are subscribed again");
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-provider" });

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "a message published after the restart is processed");
        Assert.True(Status.Reconnects < 20, $"no reconnect storm ({Status.Reconnects} reconnects)");
        using var http = _server.CreateClient();
        var metrics = await http.GetStringAsync("/metrics");
        // Each queue counted once however many times it reconnected: the gauge is not left raised by the dropped connections.
        Assert.Contains("\ncmp_stomp_connected_queues 2\n", metrics);
        Assert.Matches(@"\ncmp_stomp_reconnects_total ([2-9]|1[0-9])\n", metrics);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RabbitMqCollection
{
    public const string Name = "RabbitMQ broker";
}

/// <summary>An offering Waldur refuses to register (deleted there, say) keeps no other offering's events away.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class EventChannelPartialTests : IAsyncLifetime
{
    private readonly RabbitMqBroker _broker = new();
    private readonly ConcurrentDictionary<string, string> _queues = new();
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        _broker.ServeEvents(_bed.Waldur, _bed.Settings, _queues);
        // Served first, unknown to Waldur: its registration fails for as long as the test runs.
        _bed.Settings["Offerings:0:Uuid"] = Guid.NewGuid().ToString();
        _bed.Settings["Offerings:0:Slug"] = "gone-from-waldur";
        _bed.Settings["Offerings:1:Uuid"] = _bed.Offering.ToString();
        _bed.Settings["Offerings:1:Slug"] = "offering-0";
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _broker.Dispose();
    }

    [Fact]
    public async Task The_other_offerings_queues_are_registered_and_their_events_handled()
    {
        var server = await _bed.StartServerAsync();
        var status = server.Services.GetRequiredService<EventChannelStatus>();

        await Eventually.TrueAsync(() => status.ConnectedQueues == 2, TimeSpan.FromSeconds(20), "the known offering's two queues are listened to");
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await _broker.PublishAsync(_bed.Waldur.UserUuid.ToString("N"), _queues["order"], new JsonObject { ["order_uuid"] = order.ToString("N"), ["order_state"] = "pending-provider" });

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "its order event is handled");
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("gone-from-waldur", StringComparison.Ordinal) && line.Contains("retrying", StringComparison.Ordinal));
    }

    /// <summary>
    /// Some queues listened to, not all: monitoring sees the event channel degraded, with how many, but it is no outage
    /// (the other offering's orders still come, by the fallback poll), so <c>/status</c> answers 200.
    /// </summary>
    [Fact]
    public async Task Status_shows_the_events_check_degraded_with_how_many_queues_are_listened_to()
    {
        var server = await _bed.StartServerAsync();
        var status = server.Services.GetRequiredService<EventChannelStatus>();
        await Eventually.TrueAsync(() => status.ConnectedQueues == 2, TimeSpan.FromSeconds(20), "the known offering's two queues are listened to");
        using var client = server.CreateClient();

        var response = await client.GetAsync("/status");
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("degraded", body["status"]!.GetValue<string>());
        Assert.Equal("degraded", body["checks"]!["events"]!.GetValue<string>());
        Assert.Equal("2 of 4 Waldur event queue(s) listened to; orders of the others are found only by the fallback poll.", body["reasons"]!["events"]!.GetValue<string>());
    }
}
