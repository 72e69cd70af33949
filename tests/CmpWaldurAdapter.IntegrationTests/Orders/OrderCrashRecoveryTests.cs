using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

/// <summary>
/// The adapter dies right after each side effect of a Create order, before recording it. The next
/// process must finish the order, repeating only the interrupted step (which steps make idempotent).
/// </summary>
public sealed class OrderCrashRecoveryTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    public static TheoryData<string> CrashPoints => new()
    {
        "approve_by_provider",
        "set_backend_id",
        "create-runtime",
        "create-knowledge-base",
        "configure-agent",
        "submit_report",
        "set_state_done",
    };

    [Theory]
    [MemberData(nameof(CrashPoints))]
    public async Task A_crash_after_any_step_resumes_and_converges_to_one_tenant(string crashPoint)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        using var crash = new CancellationTokenSource();
        _bed.Provisioner.Crash = crash;
        if (ScriptedProvisioner.CreateSteps.Contains(crashPoint))
        {
            _bed.Provisioner.CrashAfter(crashPoint);
        }
        else
        {
            var crashed = 0;
            _bed.Waldur.Observe = (request, _) =>
            {
                if (request.Path.EndsWith($"/{crashPoint}/", StringComparison.Ordinal) && Interlocked.Exchange(ref crashed, 1) == 0)
                {
                    crash.Cancel();
                }
            };
        }

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _bed.Processor.ProcessAsync(order, crash.Token));

        // The dead process could not release its lease; it expires.
        await _bed.QueryAsync(db => db.Orders.ExecuteUpdateAsync(set => set
            .SetProperty(o => o.LeaseOwner, "a-process-that-died")
            .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddSeconds(-1))));
        _bed.Waldur.Observe = null;

        var outcome = await _bed.ProcessUntilSettledAsync(order);

        Assert.Contains(outcome, new[] { OrderOutcome.Completed, OrderOutcome.Ignored });
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(1, await _bed.QueryAsync(db => db.Subscriptions.CountAsync()));
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync());
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.Equal(subscription.Id.ToString(), _bed.Waldur.Resource(_bed.Waldur.ResourceOf(order))["backend_id"]!.GetValue<string>());
        foreach (var step in ScriptedProvisioner.CreateSteps)
        {
            var expected = step == crashPoint ? 2 : 1;
            Assert.True(_bed.Provisioner.Runs(step) == expected, $"{step} ran {_bed.Provisioner.Runs(step)} times, expected {expected}");
        }

        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/approve_by_provider/"));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.True(_bed.Waldur.Count("POST", ".*/set_state_done/") <= 1 || crashPoint == "set_state_done");
        Assert.Equal(OrderPhase.Completed, (await _bed.QueryAsync(db => db.Orders.SingleAsync())).Phase);
    }
}
