using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

[Collection(RabbitMqCollection.Name)]
public sealed class StaffTerminationEventOnSqliteTests() : StaffTerminationEventTests(DatabaseProvider.Sqlite);

[Collection(RabbitMqCollection.Name)]
public sealed class StaffTerminationEventOnPostgresTests() : StaffTerminationEventTests(DatabaseProvider.Postgres);

/// <summary>
/// End to end with the real RabbitMQ web-STOMP broker: a RESOURCE event for a resource Waldur staff terminated only marks
/// its subscription terminating and queues the teardown, so a teardown whose upstream hangs holds back no event after it.
/// </summary>
public abstract class StaffTerminationEventTests(DatabaseProvider provider) : IAsyncLifetime
{
    private readonly RabbitMqBroker _broker = new();
    private readonly ConcurrentDictionary<string, string> _queues = new();
    private TenantTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync(provider);
        _broker.ServeEvents(_bed.Waldur, _bed.Settings, _queues);
        // A held RAGFlow call hangs for the whole test, rather than timing out and being retried.
        _bed.Settings["Ragflow:AttemptTimeout"] = "00:02:00";
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

    private Task PublishOrderEventAsync(Guid order) =>
        _broker.PublishAsync(Vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString("N"), ["order_state"] = "pending-provider" });

    private Task PublishResourceEventAsync(Guid resource) =>
        _broker.PublishAsync(Vhost, _queues["resource"], new JsonObject { ["resource_uuid"] = resource.ToString("N") });

    private async Task<Guid> SubscribeAsync(string agentName)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes(agentName));
        await PublishOrderEventAsync(order);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(20), "the Create order is done");
        return _bed.Waldur.ResourceOf(order);
    }

    [Fact]
    public async Task A_teardown_whose_upstream_hangs_holds_back_no_later_event_and_is_done_once_when_it_answers()
    {
        var terminated = await SubscribeAsync("Ada");
        var paused = await SubscribeAsync("Bob");
        var hold = _bed.Ragflow.Hold("DELETE", "/api/v1/datasets");
        _bed.Waldur.SetResourceState(terminated, "Terminated");
        await PublishResourceEventAsync(terminated);
        await Eventually.TrueAsync(() => hold.Arrived == 1, TimeSpan.FromSeconds(20), "the teardown is under way, its RAGFlow call hanging");

        // Right after it: another resource paused by a budget policy, and a new Create order.
        _bed.Waldur.SetResourceFlags(paused, paused: true, downscaled: false);
        await PublishResourceEventAsync(paused);
        var created = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes("Cy"));
        await PublishOrderEventAsync(created);

        await Eventually.TrueAsync(async () => (await _bed.SubscriptionAsync(paused)).Paused, TimeSpan.FromSeconds(20), "the later resource event is applied");
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(created) == "done", TimeSpan.FromSeconds(20), "the Create order is done");
        // All while the teardown still waits for RAGFlow: not served, not yet removed.
        Assert.False(hold.Released);
        Assert.Equal(1, hold.Arrived);
        Assert.Equal(SubscriptionState.Terminating, (await _bed.SubscriptionAsync(terminated)).State);

        hold.Release();

        await Eventually.TrueAsync(async () => (await _bed.SubscriptionAsync(terminated)).State == SubscriptionState.Terminated, TimeSpan.FromSeconds(20), "the teardown is done");
        var ended = await _bed.SubscriptionAsync(terminated);
        Assert.Null(ended.RagflowDatasetId);
        Assert.Null(ended.LangflowFlowId);
        Assert.Equal(1, _bed.Ragflow.Count("DELETE", "/api/v1/datasets"));
        Assert.Equal(2, _bed.Ragflow.Datasets.Count);
        Assert.Equal(2, _bed.Langflow.Flows.Count);
    }
}
