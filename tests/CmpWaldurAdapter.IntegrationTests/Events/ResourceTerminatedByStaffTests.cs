using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Reconciliation;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

/// <summary>
/// Waldur staff terminate or erase a resource without a Terminate order reaching the adapter: the resource sync stops
/// serving its subscription, and reconcile lists what it left in Langflow and RAGFlow as orphans.
/// </summary>
public sealed class ResourceTerminatedByStaffTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private ResourceStateSync Sync => _bed.Services.GetRequiredService<ResourceStateSync>();

    [Fact]
    public async Task The_sweep_stops_serving_a_resource_waldur_terminated_and_reconcile_lists_its_tenant_as_orphans()
    {
        var terminated = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"));
        var kept = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"));
        _bed.Waldur.SetResourceState(terminated, "Terminated");

        Assert.Equal(1, await Sync.SyncAllAsync(CancellationToken.None));

        var ended = await _bed.SubscriptionAsync(terminated);
        Assert.Equal(SubscriptionState.Terminated, ended.State);
        Assert.NotNull(ended.TerminatedAt);
        Assert.NotNull(ApiCaller.Refusal(ended));
        Assert.Equal(SubscriptionState.Active, (await _bed.SubscriptionAsync(kept)).State);
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("without a Terminate order", StringComparison.Ordinal));

        // A second sweep has nothing more to do.
        Assert.Equal(0, await Sync.SyncAllAsync(CancellationToken.None));

        // What it left upstream is flagged: its project's runtime user (with its agent inside) and its knowledge base.
        var reconciler = _bed.Services.GetRequiredService<Reconciler>();
        var project = ended.WorkspaceId;
        var report = await reconciler.RunAsync(new ReconcileRequest(DryRun: true));
        Assert.Equal(
            [(DriftKind.OrphanLangflowUser, $"cmp-{project:N}"), (DriftKind.OrphanDataset, $"cmp-{terminated:N}")],
            report.Drifts.Where(d => d.Remains).Select(d => (d.Kind, d.Subject)).Order());

        await reconciler.RunAsync(new ReconcileRequest(Prune: true));
        var keptSubscription = await _bed.SubscriptionAsync(kept);
        Assert.Equal([keptSubscription.RagflowDatasetId], _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()));
        Assert.Equal([keptSubscription.LangflowFlowId], _bed.Langflow.Flows.Select(f => f.Id.ToString()));
        Assert.Single(_bed.Langflow.Users);
    }

    [Fact]
    public async Task A_resource_event_for_a_resource_waldur_erased_stops_serving_it()
    {
        var resource = await _bed.SubscribeAsync();
        _bed.Waldur.EraseResource(resource);

        await Sync.SyncAsync(resource, CancellationToken.None);

        var ended = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Terminated, ended.State);
        Assert.NotNull(ApiCaller.Refusal(ended));
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
