using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

public sealed class OrderLeaseTakeoverOnSqliteTests() : OrderLeaseTakeoverTests(DatabaseProvider.Sqlite);

public sealed class OrderLeaseTakeoverOnPostgresTests() : OrderLeaseTakeoverTests(DatabaseProvider.Postgres);

/// <summary>
/// A process whose lease on an order was taken over while its step still ran (its renewals were lost for a lease's length,
/// it paused, or the taker's clock is ahead) stops: it saves nothing more of the order and tells Waldur nothing more, and
/// the new holder carries the order out once.
/// </summary>
public abstract class OrderLeaseTakeoverTests(DatabaseProvider provider) : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync(provider);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_worker_whose_lease_was_taken_over_mid_step_saves_nothing_and_the_new_holder_completes_the_order_once()
    {
        await _bed.StartServicesAsync(); // the default lease: no renewal happens during the test, only the save can notice
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var step = ScriptedProvisioner.CreateSteps[1];
        var firstRun = new TaskCompletionSource();
        var secondRun = new TaskCompletionSource();
        _bed.Provisioner.HoldRunsUntil(step, firstRun.Task, secondRun.Task);
        var first = Task.Run(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(step) == 1, TimeSpan.FromSeconds(10), "the first replica is in the step");

        // Its lease ran out as far as another replica can tell: that one takes the order and runs the same step.
        await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == order)
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1))));
        using var otherReplica = await AdapterTestHost.StartServicesAsync(_bed.Settings, new CapturedLogs(), _bed.UseProvisioner);
        var second = Task.Run(() => otherReplica.Services.GetRequiredService<OrderProcessor>().ProcessAsync(order, CancellationToken.None));
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(step) == 2, TimeSpan.FromSeconds(10), "the other replica is in the step");

        // The first replica's step ends first: it must neither record it nor go on to report and finish the order.
        firstRun.SetResult();
        Assert.Equal(OrderOutcome.Busy, await first.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/submit_report/"));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        Assert.DoesNotContain(step, (await Record(order)).CompletedSteps);

        secondRun.SetResult();
        Assert.Equal(OrderOutcome.Completed, await second.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/submit_report/"));
        Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{order}/set_state_done/"));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        var record = await Record(order);
        Assert.Equal(OrderPhase.Completed, record.Phase);
        Assert.Null(record.LeaseOwner);
        await otherReplica.StopAsync();
    }

    [Fact]
    public async Task A_renewal_that_finds_the_lease_taken_over_stops_the_step_under_it()
    {
        _bed.Settings["Orders:LeaseDuration"] = "00:00:03"; // renewed every second
        await _bed.StartServicesAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var step = ScriptedProvisioner.CreateSteps[1];
        _bed.Provisioner.HoldUntil(step, new TaskCompletionSource().Task); // slow upstream calls that would go on for ever
        var working = Task.Run(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(step) == 1, TimeSpan.FromSeconds(10), "the step runs");

        await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == order).ExecuteUpdateAsync(set => set
            .SetProperty(o => o.LeaseOwner, "another-replica")
            .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5))));

        // The next renewal updates nothing: the step is cancelled, and nothing of it is saved or sent.
        Assert.Equal(OrderOutcome.Busy, await working.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(0, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/submit_report/"));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        var record = await Record(order);
        Assert.DoesNotContain(step, record.CompletedSteps);
        Assert.Equal("another-replica", record.LeaseOwner);
        Assert.Contains(_bed.Logs.Lines, m => m.Contains("was taken over by another process", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_worker_whose_lease_was_taken_over_before_it_recorded_the_subscription_records_none()
    {
        await _bed.StartServicesAsync();
        // A Create approved by an earlier attempt: resumed, it re-reads the order from Waldur, then records the subscription.
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes(), state: "executing");
        var now = DateTimeOffset.UtcNow;
        await _bed.QueryAsync(db =>
        {
            db.Orders.Add(new OrderRecord
            {
                OrderUuid = order,
                Type = OrderType.Create,
                ResourceUuid = _bed.Waldur.ResourceOf(order),
                OfferingUuid = _bed.Offering,
                Phase = OrderPhase.Approved,
                CreatedAt = now,
                UpdatedAt = now,
            });
            return db.SaveChangesAsync();
        });

        // The re-read under the lease is answered only once another replica has taken the order over.
        var reads = 0;
        _bed.Waldur.Observe = (request, _) =>
        {
            if (request.Method == "GET" && request.Path == $"/api/marketplace-orders/{order}/" && Interlocked.Increment(ref reads) == 2)
            {
                _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == order).ExecuteUpdateAsync(set => set
                    .SetProperty(o => o.LeaseOwner, "another-replica")
                    .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5)))).GetAwaiter().GetResult();
            }
        };

        Assert.Equal(OrderOutcome.Busy, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(2, reads);
        Assert.Equal(0, await _bed.QueryAsync(db => db.Subscriptions.CountAsync()));
        Assert.Equal(0, await _bed.QueryAsync(db => db.Workspaces.CountAsync()));
        var record = await Record(order);
        Assert.DoesNotContain(OrderProcessor.RecordSubscriptionStep, record.Steps);
        Assert.Null(record.SubscriptionId);
        Assert.Equal("another-replica", record.LeaseOwner);
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_backend_id/"));
    }

    private Task<OrderRecord> Record(Guid order) =>
        _bed.QueryAsync(db => db.Orders.AsNoTracking().SingleAsync(o => o.OrderUuid == order));
}
