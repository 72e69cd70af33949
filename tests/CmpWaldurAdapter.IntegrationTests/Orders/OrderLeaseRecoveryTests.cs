using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

/// <summary>
/// Leases this process holds on orders it no longer works on (the release was lost to a database outage)
/// are taken back at once, with the default five-minute lease, while leases of work in flight and of other
/// processes stay untouched.
/// </summary>
public sealed class OrderLeaseRecoveryTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_order_whose_lease_release_was_lost_is_done_within_seconds_not_after_the_lease_expires()
    {
        var server = await _bed.StartServerAsync();
        var leases = server.Services.GetRequiredService<OrderLeases>();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await OrphanAsync(leases, order, leases.Owner);

        var started = DateTime.UtcNow;
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(20), "the order is done although its old lease runs for minutes");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15), "the orphaned lease is taken back at once");
        Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{order}/set_state_done/"));
        await Eventually.TrueAsync(async () => await LeaseOwnerAsync(order) is null, TimeSpan.FromSeconds(5), "the lease is released after the work");
    }

    [Fact]
    public async Task A_lease_of_another_process_is_still_respected_until_it_expires()
    {
        var server = await _bed.StartServerAsync();
        var leases = server.Services.GetRequiredService<OrderLeases>();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await OrphanAsync(leases, order, "other-replica/1/abcdef01");

        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Task.Delay(TimeSpan.FromSeconds(3));

        Assert.Equal(0, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{order}/approve_by_provider/"));
        Assert.Equal(0, await server.Services.GetRequiredService<OrderLeases>().ReleaseOrphanedAsync(CancellationToken.None));
        Assert.Equal("other-replica/1/abcdef01", await LeaseOwnerAsync(order));
    }

    [Fact]
    public async Task The_sweep_frees_only_orphaned_leases_of_this_process_and_work_in_flight_stays_exclusive()
    {
        _bed.Settings["Orders:InboxCheckInterval"] = "01:00:00";
        await _bed.StartServicesAsync();
        var leases = _bed.Services.GetRequiredService<OrderLeases>();
        var inFlight = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("In flight"));
        var orphaned = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Orphaned"));
        await leases.EnsureRecordAsync(inFlight, OrderType.Create, _bed.Waldur.ResourceOf(inFlight), _bed.Offering, CancellationToken.None);
        Assert.True(await leases.TryAcquireAsync(inFlight, CancellationToken.None));
        await OrphanAsync(leases, orphaned, leases.Owner);

        // A second worker of this process never gets an order that is in flight here.
        Assert.False(await leases.TryAcquireAsync(inFlight, CancellationToken.None));

        Assert.Equal(1, await leases.ReleaseOrphanedAsync(CancellationToken.None));
        Assert.Equal(leases.Owner, await LeaseOwnerAsync(inFlight));
        Assert.Null(await LeaseOwnerAsync(orphaned));

        // Once its work ends (even with the release lost), the order is free to take again.
        await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == inFlight).ExecuteUpdateAsync(s => s.SetProperty(o => o.LeaseOwner, "lost")));
        await leases.ReleaseAsync(inFlight);
        await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == inFlight).ExecuteUpdateAsync(s => s.SetProperty(o => o.LeaseOwner, leases.Owner)));
        Assert.True(await leases.TryAcquireAsync(inFlight, CancellationToken.None));
    }

    /// <summary>The state a lost release leaves: the order's record leased to <paramref name="owner"/> for the full default duration.</summary>
    private async Task OrphanAsync(OrderLeases leases, Guid order, string owner)
    {
        await leases.EnsureRecordAsync(order, OrderType.Create, _bed.Waldur.ResourceOf(order), _bed.Offering, CancellationToken.None);
        var until = DateTimeOffset.UtcNow + TimeSpan.FromMinutes(5);
        var updated = await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == order)
            .ExecuteUpdateAsync(s => s.SetProperty(o => o.LeaseOwner, owner).SetProperty(o => o.LeaseExpiresAt, until)));
        Assert.Equal(1, updated);
    }

    private Task<string?> LeaseOwnerAsync(Guid order) =>
        _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == order).Select(o => o.LeaseOwner).SingleAsync());
}
