using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Reconciliation;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

public sealed class ResourceTerminatedByStaffOnSqliteTests() : ResourceTerminatedByStaffTests(DatabaseProvider.Sqlite);

public sealed class ResourceTerminatedByStaffOnPostgresTests() : ResourceTerminatedByStaffTests(DatabaseProvider.Postgres);

/// <summary>
/// Waldur staff terminate or erase a resource without a Terminate order reaching the adapter: the resource sync stops
/// serving its subscription. A terminated one has its tenant removed as its Terminate order would; an erased one (a 404,
/// which an adapter that lost its role in Waldur sees too) leaves it to reconcile, which lists it as orphans.
/// </summary>
public abstract class ResourceTerminatedByStaffTests(DatabaseProvider provider) : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync(provider);
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private ResourceStateSync Sync => _bed.Services.GetRequiredService<ResourceStateSync>();

    private Reconciler Reconciler => _bed.Services.GetRequiredService<Reconciler>();

    /// <summary>The subscription is terminated and its single tenant gone: knowledge base, agent and runtime user.</summary>
    private async Task AssertTornDownAsync(Guid resource)
    {
        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(resource)).State);
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Empty(_bed.Langflow.Flows);
        Assert.Empty(_bed.Langflow.Users);
    }

    [Fact]
    public async Task The_sweep_removes_the_tenant_of_a_resource_waldur_terminated_as_its_terminate_order_would()
    {
        var terminated = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"));
        var kept = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"));
        _bed.Waldur.SetResourceState(terminated, "Terminated");

        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        var ended = await _bed.SubscriptionAsync(terminated);
        Assert.Equal(SubscriptionState.Terminated, ended.State);
        Assert.NotNull(ended.TerminatedAt);
        Assert.NotNull(ApiCaller.Refusal(ended));
        Assert.Null(ended.RagflowDatasetId);
        Assert.Null(ended.LangflowFlowId);
        Assert.Equal(0, await _bed.QueryAsync(db => db.ApiKeys.CountAsync(k => k.SubscriptionId == ended.Id && k.RevokedAt == null)));
        Assert.Equal(SubscriptionState.Active, (await _bed.SubscriptionAsync(kept)).State);
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("without a Terminate order", StringComparison.Ordinal));

        // Its project's runtime user (with its agent inside) and its knowledge base are gone; the other subscription's stay.
        var keptSubscription = await _bed.SubscriptionAsync(kept);
        Assert.Equal([keptSubscription.RagflowDatasetId], _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()));
        Assert.Equal([keptSubscription.LangflowFlowId], _bed.Langflow.Flows.Select(f => f.Id.ToString()));
        Assert.Single(_bed.Langflow.Users);
        Assert.Null((await _bed.WorkspaceAsync(ended.WorkspaceId)).LangflowUserId);

        // A second sweep has nothing more to do, and removes nothing twice.
        var requests = _bed.Langflow.Requests.Count() + _bed.Ragflow.Requests.Count();
        Assert.Equal(0, await Sync.SyncAllAsync(CancellationToken.None));
        Assert.Equal(requests, _bed.Langflow.Requests.Count() + _bed.Ragflow.Requests.Count());

        // Nothing is left for reconcile to list.
        var report = await Reconciler.RunAsync(new ReconcileRequest(DryRun: true));
        Assert.DoesNotContain(report.Drifts, d => d.Remains);
    }

    [Fact]
    public async Task A_resource_event_for_a_resource_waldur_terminated_removes_its_tenant()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.SetResourceState(resource, "Terminated");

        await Sync.SyncAsync(resource, CancellationToken.None);

        // Done off the event path, once.
        await Eventually.TrueAsync(async () => (await _bed.SubscriptionAsync(resource)).State == SubscriptionState.Terminated, TimeSpan.FromSeconds(20), "the teardown is done");
        await AssertTornDownAsync(resource);
        Assert.Equal(1, _bed.Ragflow.Count("DELETE", "/api/v1/datasets"));
    }

    [Fact]
    public async Task A_teardown_that_fails_leaves_the_subscription_unserved_and_the_next_sweep_finishes_it()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.SetResourceState(resource, "Terminated");
        _bed.Ragflow.Break("DELETE", "/api/v1/datasets", 503);

        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        var ending = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Terminating, ending.State);
        Assert.NotNull(ApiCaller.Refusal(ending));
        Assert.Single(_bed.Ragflow.Datasets);
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("the next resource sweep tries again", StringComparison.Ordinal));

        // Reconcile does not take the tenant of a subscription still being removed for an orphan.
        var report = await Reconciler.RunAsync(new ReconcileRequest(DryRun: true));
        Assert.DoesNotContain(report.Drifts, d => d.Remains);

        _bed.Ragflow.Heal();
        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        await AssertTornDownAsync(resource);
    }

    [Fact]
    public async Task A_failed_teardown_is_finished_after_waldur_erased_the_resource_meanwhile()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.SetResourceState(resource, "Terminated");
        _bed.Ragflow.Break("DELETE", "/api/v1/datasets", 503);
        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));
        Assert.Equal(SubscriptionState.Terminating, (await _bed.SubscriptionAsync(resource)).State);

        // Seen terminated before, the resource now answers 404: the teardown begun goes on.
        _bed.Waldur.EraseResource(resource);
        _bed.Ragflow.Heal();
        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        await AssertTornDownAsync(resource);
    }

    [Fact]
    public async Task A_terminating_subscription_whose_resource_waldur_erased_costs_one_waldur_request_per_sweep_until_torn_down()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.SetResourceState(resource, "Terminated");
        _bed.Ragflow.Break("DELETE", "/api/v1/datasets", 503);
        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));
        _bed.Waldur.EraseResource(resource);
        int WaldurReads() => _bed.Waldur.Count("GET", $"/api/marketplace-provider-resources/{resource}/") + _bed.Waldur.Count("GET", $"/api/marketplace-provider-offerings/{_bed.Offering}/");

        // Its teardown still failing, each sweep asks for the resource only: a 404 has nothing more to end.
        for (var sweep = 0; sweep < 2; sweep++)
        {
            var before = WaldurReads();
            Assert.Equal(0, await Sync.SyncAllAsync(CancellationToken.None));
            Assert.Equal(1, WaldurReads() - before);
            Assert.Equal(SubscriptionState.Terminating, (await _bed.SubscriptionAsync(resource)).State);
        }

        _bed.Ragflow.Heal();
        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));
        await AssertTornDownAsync(resource);

        // Terminated, it is asked about no more.
        var done = WaldurReads();
        Assert.Equal(0, await Sync.SyncAllAsync(CancellationToken.None));
        Assert.Equal(done, WaldurReads());
    }

    [Fact]
    public async Task Teardowns_cut_short_or_left_queued_by_a_stop_are_finished_by_the_sweep_after_waldur_erased_the_resources()
    {
        var first = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"));
        var second = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"));
        var hold = _bed.Ragflow.Hold("DELETE", "/api/v1/datasets");
        _bed.Waldur.SetResourceState(first, "Terminated");
        _bed.Waldur.SetResourceState(second, "Terminated");
        await Sync.SyncAsync(first, CancellationToken.None);
        await Eventually.TrueAsync(() => hold.Arrived == 1, TimeSpan.FromSeconds(20), "the first teardown is under way, its RAGFlow call hanging");
        await Sync.SyncAsync(second, CancellationToken.None);

        // The adapter stops; its shutdown timeout runs out before RAGFlow answers. The second teardown never began.
        var stopped = _bed.Host!;
        using (var shutdown = new CancellationTokenSource(TimeSpan.FromMilliseconds(500)))
        {
            await stopped.StopAsync(shutdown.Token);
        }

        stopped.Dispose();
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("the next resource sweep finishes them", StringComparison.Ordinal));
        Assert.Equal(1, hold.Arrived);

        // Waldur erases both meanwhile, and RAGFlow answers again: the held call removes its dataset, unknown to the adapter.
        _bed.Waldur.EraseResource(first);
        _bed.Waldur.EraseResource(second);
        _bed.Ragflow.Heal();
        hold.Release();
        await Eventually.TrueAsync(() => _bed.Ragflow.Datasets.Count == 1, TimeSpan.FromSeconds(20), "the held call is answered");
        await _bed.StartServicesAsync();
        Assert.Equal(SubscriptionState.Terminating, (await _bed.SubscriptionAsync(first)).State);
        Assert.Equal(SubscriptionState.Terminating, (await _bed.SubscriptionAsync(second)).State);

        Assert.Equal(2, await Sync.SyncAllAsync(CancellationToken.None));

        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(first)).State);
        await AssertTornDownAsync(second);
        // The first's asked again (its answer never reached the adapter), harmlessly: the dataset is gone already.
        Assert.Equal(3, _bed.Ragflow.Count("DELETE", "/api/v1/datasets"));
    }

    [Fact]
    public async Task The_teardown_waits_while_an_order_of_the_resource_is_at_work()
    {
        var resource = await _bed.SubscribeAsync();
        // Another replica works on an order of the resource (a Terminate of it, say) right now.
        await _bed.QueryAsync(db => db.Orders.Where(o => o.ResourceUuid == resource).ExecuteUpdateAsync(set => set
            .SetProperty(o => o.LeaseOwner, "another-replica")
            .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5))));
        _bed.Waldur.SetResourceState(resource, "Terminated");

        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        // No longer served at once, but nothing removed under the order's steps.
        Assert.Equal(SubscriptionState.Terminating, (await _bed.SubscriptionAsync(resource)).State);
        Assert.Single(_bed.Ragflow.Datasets);
        Assert.Single(_bed.Langflow.Flows);

        await _bed.QueryAsync(db => db.Orders.Where(o => o.ResourceUuid == resource && o.LeaseOwner == "another-replica").ExecuteUpdateAsync(set => set
            .SetProperty(o => o.LeaseOwner, (string?)null)
            .SetProperty(o => o.LeaseExpiresAt, (DateTimeOffset?)null)));
        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        await AssertTornDownAsync(resource);
    }

    [Fact]
    public async Task A_resource_event_for_a_resource_waldur_erased_stops_serving_it_and_leaves_its_tenant_to_reconcile()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.EraseResource(resource);

        await Sync.SyncAsync(resource, CancellationToken.None);

        var ended = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Terminated, ended.State);
        Assert.NotNull(ApiCaller.Refusal(ended));

        // A 404 is no proof (a lost role in Waldur looks alike): nothing is removed until an operator prunes it.
        Assert.Single(_bed.Ragflow.Datasets);
        Assert.Single(_bed.Langflow.Flows);
        var report = await Reconciler.RunAsync(new ReconcileRequest(DryRun: true));
        Assert.Equal(
            [(DriftKind.OrphanLangflowUser, $"cmp-{ended.WorkspaceId:N}"), (DriftKind.OrphanDataset, $"cmp-{resource:N}")],
            report.Drifts.Where(d => d.Remains).Select(d => (d.Kind, d.Subject)).Order());

        await Reconciler.RunAsync(new ReconcileRequest(Prune: true));
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.Flows);
    }

    [Fact]
    public async Task Terminating_the_last_subscription_of_a_project_removes_the_flow_an_erased_one_left_with_the_user()
    {
        var project = Guid.NewGuid();
        var erased = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"), project: project);
        var last = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"), project: project);
        var user = Assert.Single(_bed.Langflow.Users);
        // Waldur erases the first: it is no longer served, its flow is left (a 404 is no proof).
        _bed.Waldur.EraseResource(erased);
        await Sync.SyncAsync(erased, CancellationToken.None);
        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(erased)).State);
        Assert.Equal(2, _bed.Langflow.Flows.Count);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, last);

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        Assert.Empty(_bed.Langflow.Users);
        // The user's delete leaves its flows behind on the shared Langflow: the erased subscription's went before it.
        Assert.DoesNotContain(_bed.Langflow.Flows, f => f.UserId == user.Id);
        Assert.DoesNotContain(_bed.Langflow.Projects, p => p.UserId == user.Id);
    }

    [Fact]
    public async Task The_sweep_stops_serving_a_resource_waldur_erased()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.EraseResource(resource);

        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(resource)).State);
    }

    [Fact]
    public async Task Resources_hidden_with_their_offering_when_the_adapter_loses_its_role_are_kept_served()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.HideOffering(_bed.Offering);

        Assert.Equal(0, await Sync.SyncAllAsync(CancellationToken.None));
        await Sync.SyncAsync(resource, CancellationToken.None);

        Assert.Equal(SubscriptionState.Active, (await _bed.SubscriptionAsync(resource)).State);
    }

    [Fact]
    public async Task A_resource_being_terminated_by_its_order_is_left_to_that_order()
    {
        var resource = await _bed.SubscribeAsync();
        // Staff's Terminate order is on its way (Waldur shows the resource as Terminating until it is done).
        _bed.Waldur.SetResourceState(resource, "Terminating");

        Assert.Equal(0, await Sync.SyncAllAsync(CancellationToken.None));

        Assert.Equal(SubscriptionState.Active, (await _bed.SubscriptionAsync(resource)).State);
    }
}
