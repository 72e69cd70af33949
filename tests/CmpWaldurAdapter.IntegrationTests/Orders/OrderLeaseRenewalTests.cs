using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

/// <summary>A process working on an order keeps its lease for as long as the work takes; only its death lets another take over.</summary>
public sealed class OrderLeaseRenewalTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        _bed.Settings["Orders:LeaseDuration"] = "00:00:03"; // renewed every second
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_order_whose_step_outlasts_the_lease_is_not_taken_over_while_its_process_works_on_it()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var slow = new TaskCompletionSource();
        // Slow upstream calls with their retries: the step takes well over one lease.
        _bed.Provisioner.HoldUntil(ScriptedProvisioner.CreateSteps[0], slow.Task);
        var processing = _bed.Processor.ProcessAsync(order, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]) == 1, TimeSpan.FromSeconds(10));

        var otherReplica = new OrderLeases(_bed.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), new AdapterInstance(), TimeProvider.System,
            _bed.Services.GetRequiredService<IOptionsMonitor<OrdersOptions>>(), NullLogger<OrderLeases>.Instance);
        var takenOver = false;
        for (var i = 0; i < 16 && !takenOver; i++) // about two and a half leases
        {
            await Task.Delay(500);
            takenOver = await otherReplica.TryAcquireAsync(order, CancellationToken.None);
        }

        slow.SetResult();
        Assert.Equal(OrderOutcome.Completed, await processing);
        Assert.False(takenOver, "another replica took the order while its step still ran");
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]));
    }
}
