using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

/// <summary>
/// The resource sweep reads Waldur's resources in pages of two. Waldur answers a page past the last with 404, so when the
/// served resources fill the last page exactly the sweep must stop there and still reach the resources it did not list.
/// </summary>
public sealed class ResourceSweepPagingTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        _bed.Settings["Waldur:PageSize"] = "2";
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_resource_staff_terminated_is_torn_down_when_the_ok_ones_fill_a_whole_page()
    {
        var ada = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"));
        var bob = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"));
        var terminated = await _bed.SubscribeAsync(TenantTestBed.Attributes("Cy"));
        _bed.Waldur.SetResourceState(terminated, "Terminated");

        Assert.Equal(1, await _bed.Services.GetRequiredService<ResourceStateSync>().SyncAllAsync(CancellationToken.None));

        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(terminated)).State);
        Assert.Equal(SubscriptionState.Active, (await _bed.SubscriptionAsync(ada)).State);
        Assert.Equal(SubscriptionState.Active, (await _bed.SubscriptionAsync(bob)).State);
        Assert.Equal(2, _bed.Ragflow.Datasets.Count);
        Assert.Equal(2, _bed.Langflow.Flows.Count);
    }
}
