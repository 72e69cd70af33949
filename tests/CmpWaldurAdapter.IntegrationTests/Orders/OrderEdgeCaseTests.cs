using System.Data.Common;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

public sealed class OrderEdgeCasesOnSqliteTests() : OrderEdgeCaseTests(DatabaseProvider.Sqlite);

public sealed class OrderEdgeCasesOnPostgresTests() : OrderEdgeCaseTests(DatabaseProvider.Postgres);

/// <summary>
/// What a real marketplace does around an order: staff cancel, reject or err it while it is provisioned, a Terminate of the
/// resource arrives while its Create is still worked on, an old announcement is replayed after the resource is gone.
/// </summary>
public abstract class OrderEdgeCaseTests(DatabaseProvider provider) : IAsyncLifetime
{
    private readonly BeforeNextTransaction _beforeNextTransaction = new();
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync(provider);
        await _bed.StartServicesAsync(configure: services => services.AddDatabaseInterceptor(provider, _beforeNextTransaction));
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Theory]
    [InlineData("erred")]
    [InlineData("canceled")]
    [InlineData("rejected")]
    public async Task A_create_that_waldur_staff_stop_while_it_is_provisioned_is_not_done_nor_served_and_terminate_cleans_it(string stoppedAs)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(order);
        _bed.Provisioner.ChangeOnce(ScriptedProvisioner.CreateSteps[^1], _ => _bed.Waldur.SetOrderState(order, stoppedAs));

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        // Waldur's decision stands: the adapter neither completes nor re-errs the order.
        Assert.Equal(stoppedAs, _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        var subscription = await Subscription(resource);
        Assert.Equal(SubscriptionState.Erred, subscription.State);
        Assert.NotNull(ApiCaller.Refusal(subscription));

        // A later look (a replayed event, the reconciler) changes nothing.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));

        // What was built is exactly what the resource's Terminate removes.
        await TerminateErredResourceAsync(resource);
    }

    [Theory]
    [InlineData("canceled", true)]
    [InlineData("rejected", true)]
    [InlineData("erred", true)]
    [InlineData("canceled", false)]
    public async Task A_create_that_waldur_staff_stop_after_its_agent_went_live_is_not_done_nor_served_and_terminate_cleans_it(string stoppedAs, bool atDone)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(order);
        if (atDone)
        {
            // Between the adapter's last read of the order and its set_state_done, which Waldur then refuses.
            _bed.Waldur.StopOrderBeforeDone(order, stoppedAs);
        }
        else
        {
            // While the report is submitted, before the adapter's last read of the order.
            _bed.Waldur.Observe = (request, _) =>
            {
                if (request.Method == "POST" && request.Path.EndsWith("/submit_report/", StringComparison.Ordinal))
                {
                    _bed.Waldur.SetOrderState(order, stoppedAs);
                }
            };
        }

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        // Waldur's decision stands: the adapter neither completes nor re-errs the order, and the agent is not served.
        Assert.Equal(stoppedAs, _bed.Waldur.OrderState(order));
        Assert.Equal(atDone ? 1 : 0, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        var subscription = await Subscription(resource);
        Assert.Equal(SubscriptionState.Erred, subscription.State);
        Assert.NotNull(ApiCaller.Refusal(subscription));
        var record = await _bed.QueryAsync(db => db.Orders.AsNoTracking().SingleAsync(o => o.OrderUuid == order));
        Assert.Equal(OrderPhase.Erred, record.Phase);
        Assert.StartsWith($"The order became {stoppedAs} in Waldur before it was done.", record.LastError);

        // A later look changes nothing; what was built is exactly what the resource's Terminate removes.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(SubscriptionState.Erred, (await Subscription(resource)).State);
        _bed.Waldur.SetResourceState(resource, "Erred");
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        await AssertBuiltAndRemovedOnceAsync(resource);
    }

    [Fact]
    public async Task A_create_that_waldur_sets_done_while_a_step_is_retried_is_finished_and_served()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(order);
        _bed.Provisioner.FailTransiently(ScriptedProvisioner.CreateSteps[1], 1);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));

        // Staff (or the provider's own people) set it done in Waldur before the retry.
        _bed.Waldur.SetOrderState(order, "done");

        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(order));

        // The buyer gets the agent Waldur shows as ready, built once, and the order is left as Waldur has it.
        var subscription = await Subscription(resource);
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.Null(ApiCaller.Refusal(subscription));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]));
        Assert.Equal(2, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[1])); // failed once, then ran again
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        Assert.Equal("Your agent is ready", _bed.Waldur.Resource(resource)["report"]![0]!["header"]!.GetValue<string>());
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_(done|erred)/"));
        Assert.Equal(OrderPhase.Completed, (await Record(order)).Phase);

        // A later look changes nothing.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
    }

    [Theory]
    [InlineData("erred", false)]
    [InlineData("canceled", false)]
    [InlineData("rejected", false)]
    [InlineData("canceled", true)]
    public async Task A_create_that_waldur_staff_stop_while_a_step_is_retried_is_not_served_and_nothing_is_torn_down(string stoppedAs, bool afterLive)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(order);
        if (afterLive)
        {
            // The agent is live; Waldur cannot take the report for now.
            _bed.Waldur.Break("POST", "/api/marketplace-provider-resources/.*/submit_report/", 503);
        }
        else
        {
            _bed.Provisioner.FailTransiently(ScriptedProvisioner.CreateSteps[1], 1);
        }

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(afterLive ? SubscriptionState.Active : SubscriptionState.Provisioning, (await Subscription(resource)).State);
        _bed.Waldur.Heal();
        _bed.Waldur.SetOrderState(order, stoppedAs);

        Assert.Equal(OrderOutcome.Erred, await _bed.ProcessUntilSettledAsync(order));

        // Waldur's decision stands, the agent is not served, and nothing more is built or removed.
        Assert.Equal(stoppedAs, _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_(done|erred)/"));
        var subscription = await Subscription(resource);
        Assert.Equal(SubscriptionState.Erred, subscription.State);
        Assert.NotNull(ApiCaller.Refusal(subscription));
        Assert.Equal(afterLive ? 1 : 0, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        Assert.Equal(0, _bed.Provisioner.Runs(ScriptedProvisioner.TerminateSteps[0]));
        var record = await Record(order);
        Assert.Equal(OrderPhase.Erred, record.Phase);
        Assert.StartsWith($"The order became {stoppedAs} in Waldur before it was done. It is not served", record.LastError);
        Assert.Contains(_bed.Logs.Lines, line => line.Contains($"Order {order} (Create) became", StringComparison.Ordinal)
            && line.Contains("in Waldur before the adapter finished it", StringComparison.Ordinal) && line.Contains("is not served", StringComparison.Ordinal));

        // A later look changes nothing; what was built is exactly what the resource's Terminate removes.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        await TerminateErredResourceAsync(resource);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_update_that_waldur_staff_stop_before_it_is_done_is_recorded_as_stopped_not_done(bool betweenAttempts)
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(create);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(create));
        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["tone"] = "formal" });
        if (betweenAttempts)
        {
            _bed.Provisioner.FailTransiently(ScriptedProvisioner.UpdateSteps[0], 1);
            await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(update, CancellationToken.None));
            _bed.Waldur.SetOrderState(update, "erred");
        }
        else
        {
            // While the report is submitted, before the adapter's last read of the order.
            _bed.Waldur.Observe = (request, _) =>
            {
                if (request.Method == "POST" && request.Path.EndsWith("/submit_report/", StringComparison.Ordinal) && _bed.Waldur.OrderState(update) == "executing")
                {
                    _bed.Waldur.SetOrderState(update, "erred");
                }
            };
        }

        Assert.Equal(OrderOutcome.Erred, await _bed.ProcessUntilSettledAsync(update));

        Assert.Equal("erred", _bed.Waldur.OrderState(update));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_done/")); // the Create's
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        var record = await Record(update);
        Assert.Equal(OrderPhase.Erred, record.Phase);
        Assert.StartsWith("The order became erred in Waldur before it was done. The settings it applied so far stay", record.LastError);
        Assert.DoesNotContain(_bed.Logs.Lines, line => line.Contains($"Order {update} (Update) is done", StringComparison.Ordinal));
        // An Update never stops the agent being served.
        Assert.Equal(SubscriptionState.Active, (await Subscription(resource)).State);
    }

    [Fact]
    public async Task An_update_that_waldur_sets_done_while_its_step_is_retried_is_applied()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(create);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(create));
        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["tone"] = "formal" });
        _bed.Provisioner.FailTransiently(ScriptedProvisioner.UpdateSteps[0], 1);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(update, CancellationToken.None));
        _bed.Waldur.SetOrderState(update, "done");

        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(update));

        Assert.Equal(2, _bed.Provisioner.Runs(ScriptedProvisioner.UpdateSteps[0])); // failed once, then ran again
        Assert.Equal("Settings updated", _bed.Waldur.Resource(resource)["report"]![0]!["header"]!.GetValue<string>());
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_done/")); // the Create's
        Assert.Equal(OrderPhase.Completed, (await Record(update)).Phase);
    }

    [Fact]
    public async Task A_terminate_arriving_while_the_create_of_its_resource_is_worked_on_waits_for_it_and_ends_terminated()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(create);
        var release = new TaskCompletionSource();
        _bed.Provisioner.HoldUntil(ScriptedProvisioner.CreateSteps[1], release.Task);
        var creating = Task.Run(() => _bed.Processor.ProcessAsync(create, CancellationToken.None));
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[1]) == 1, TimeSpan.FromSeconds(10), "the create is half-way");

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        // Another worker picks up the Terminate: it waits for the Create instead of removing the tenant under it.
        Assert.Equal(OrderOutcome.Busy, await _bed.Processor.ProcessAsync(terminate, CancellationToken.None));
        Assert.Equal(0, _bed.Provisioner.Runs(ScriptedProvisioner.TerminateSteps[0]));

        release.SetResult();
        Assert.Equal(OrderOutcome.Completed, await creating);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));

        Assert.Equal("Terminated", _bed.Waldur.Resource(resource)["state"]!.GetValue<string>());
        await AssertBuiltAndRemovedOnceAsync(resource);
    }

    [Fact]
    public async Task A_terminate_waits_while_another_replica_works_on_the_create_of_its_resource()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(create);
        _bed.Provisioner.FailTransiently(ScriptedProvisioner.CreateSteps[1], 1);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(create, CancellationToken.None));
        // Another replica took the Create up again and is on it now.
        await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == create).ExecuteUpdateAsync(set => set
            .SetProperty(o => o.LeaseOwner, "another-replica")
            .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5))));

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);

        Assert.Equal(OrderOutcome.Busy, await _bed.Processor.ProcessAsync(terminate, CancellationToken.None));
        Assert.Equal("pending-provider", _bed.Waldur.OrderState(terminate));
        Assert.Equal(0, _bed.Provisioner.Runs(ScriptedProvisioner.TerminateSteps[0]));
    }

    [Fact]
    public async Task A_create_resumed_after_a_terminate_of_its_resource_does_not_bring_the_tenant_back()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(create);
        _bed.Provisioner.FailTransiently(ScriptedProvisioner.CreateSteps[1], 1);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(create, CancellationToken.None));

        // The Terminate is taken first (the Create waits for its retry, e.g. on another worker).
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        var createRuns = ScriptedProvisioner.CreateSteps.Sum(_bed.Provisioner.Runs);

        var outcome = await _bed.ProcessUntilSettledAsync(create);

        Assert.Equal(OrderOutcome.Erred, outcome);
        Assert.Equal(createRuns, ScriptedProvisioner.CreateSteps.Sum(_bed.Provisioner.Runs));
        var subscription = await Subscription(resource);
        Assert.Equal(SubscriptionState.Terminated, subscription.State);
        Assert.NotNull(ApiCaller.Refusal(subscription));
        Assert.Equal("erred", _bed.Waldur.OrderState(create));
        Assert.StartsWith("This subscription was terminated while it was being created.", _bed.Waldur.Order(create)["error_message"]!.GetValue<string>());
        Assert.Equal("Terminated", _bed.Waldur.Resource(resource)["state"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_old_announcement_of_a_create_replayed_after_its_resource_was_terminated_provisions_nothing()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(create);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(create));
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        var waldurCalls = _bed.Waldur.Requests.Count(r => r.Method == "POST");

        // Days later the broker redelivers the Create's first announcement ("pending-provider"): the order is looked at again.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(create, CancellationToken.None));

        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
        Assert.Equal(SubscriptionState.Terminated, (await Subscription(resource)).State);
        Assert.Equal(waldurCalls, _bed.Waldur.Requests.Count(r => r.Method == "POST"));
        Assert.Equal(("done", "Terminated"), (_bed.Waldur.OrderState(create), _bed.Waldur.Resource(resource)["state"]!.GetValue<string>()));
    }

    [Fact]
    public async Task An_order_cancelled_before_the_adapter_could_approve_it_is_recorded_as_skipped_and_then_left_alone()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", ".*/approve_by_provider/", 503, times: 10);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(OrderPhase.Received, (await Record(order)).Phase);

        // The buyer cancels it before the retry: nothing is the provider's to do, and the record says so.
        _bed.Waldur.SetOrderState(order, "canceled");
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        var settled = await Record(order);
        Assert.Equal(OrderPhase.Skipped, settled.Phase);
        Assert.NotNull(settled.CompletedAt);

        // Looked at again (a replayed announcement), the settled record is not touched and nothing runs.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        var again = await Record(order);
        Assert.Equal((OrderPhase.Skipped, settled.UpdatedAt, settled.CompletedAt), (again.Phase, again.UpdatedAt, again.CompletedAt));
        Assert.Null(again.LeaseOwner);
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(0, _bed.Provisioner.Runs(step)));
        Assert.Equal(0, await _bed.QueryAsync(db => db.Subscriptions.CountAsync()));
        Assert.Equal("canceled", _bed.Waldur.OrderState(order));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_create_erred_that_waldur_staff_move_back_to_executing_is_worked_again_from_where_it_stood_and_done(bool erredByStaff)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(order);
        if (erredByStaff)
        {
            // Staff err it in Waldur while a step is retried.
            _bed.Provisioner.FailTransiently(ScriptedProvisioner.CreateSteps[1], 1);
            await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
            _bed.Waldur.SetOrderState(order, "erred");
        }
        else
        {
            // The adapter errs it: an upstream refused a step for good.
            _bed.Provisioner.FailPermanently(ScriptedProvisioner.CreateSteps[1], "The knowledge base could not be created: the template is invalid.");
        }

        Assert.Equal(OrderOutcome.Erred, await _bed.ProcessUntilSettledAsync(order));
        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        Assert.Equal(SubscriptionState.Erred, (await Subscription(resource)).State);

        // The cause is fixed; staff move the order back to executing, as Waldur allows from erred.
        _bed.Provisioner.Recover(ScriptedProvisioner.CreateSteps[1]);
        await _bed.Waldur.StaffSetsOrderExecutingAsync(order);

        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(order));

        // Worked again from where it stood: the failed step ran again, the others once, and the buyer gets the agent.
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        Assert.Equal(erredByStaff ? 0 : 1, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]));
        Assert.Equal(2, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[1]));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        var subscription = await Subscription(resource);
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.Null(ApiCaller.Refusal(subscription));
        Assert.Equal("Your agent is ready", _bed.Waldur.Resource(resource)["report"]![0]!["header"]!.GetValue<string>());
        var record = await Record(order);
        Assert.Equal((OrderPhase.Completed, 0, null), (record.Phase, record.Attempts, record.LastError));
        Assert.Contains(_bed.Logs.Lines, line => line.Contains($"Order {order} (Create) was erred, and Waldur shows it executing again: staff moved it back", StringComparison.Ordinal));

        // A later look changes nothing.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
    }

    [Fact]
    public async Task A_create_erred_while_waldur_could_not_be_told_is_erred_in_waldur_later_and_not_worked_again()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Provisioner.FailPermanently(ScriptedProvisioner.CreateSteps[1], "The knowledge base could not be created: the template is invalid.");
        _bed.Waldur.Break("POST", "/api/marketplace-orders/.*/set_state_erred/", 503);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("executing", _bed.Waldur.OrderState(order));

        // Executing in Waldur only because Waldur was not told: that is no staff retry.
        _bed.Provisioner.Recover(ScriptedProvisioner.CreateSteps[1]);
        _bed.Waldur.Heal();
        Assert.Equal(OrderOutcome.Erred, await _bed.ProcessUntilSettledAsync(order));

        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        Assert.Contains("the template is invalid", _bed.Waldur.Order(order)["error_message"]!.GetValue<string>());
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[1]));
        Assert.Equal(0, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[2]));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        Assert.Equal(SubscriptionState.Erred, (await Subscription(_bed.Waldur.ResourceOf(order))).State);
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
    }

    [Fact]
    public async Task A_create_that_staff_move_back_after_its_resource_was_terminated_errs_again_and_brings_nothing_back()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var resource = _bed.Waldur.ResourceOf(order);
        _bed.Provisioner.FailPermanently(ScriptedProvisioner.CreateSteps[1], "The knowledge base could not be created: the template is invalid.");
        Assert.Equal(OrderOutcome.Erred, await _bed.ProcessUntilSettledAsync(order));
        _bed.Provisioner.Recover(ScriptedProvisioner.CreateSteps[1]);
        await TerminateErredResourceAsync(resource);
        var createRuns = ScriptedProvisioner.CreateSteps.Sum(_bed.Provisioner.Runs);

        await _bed.Waldur.StaffSetsOrderExecutingAsync(order);

        Assert.Equal(OrderOutcome.Erred, await _bed.ProcessUntilSettledAsync(order));
        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        Assert.StartsWith("This subscription was terminated while it was being created.", _bed.Waldur.Order(order)["error_message"]!.GetValue<string>());
        Assert.Equal(createRuns, ScriptedProvisioner.CreateSteps.Sum(_bed.Provisioner.Runs));
        Assert.Equal(SubscriptionState.Terminated, (await Subscription(resource)).State);
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/marketplace-orders/" + order + "/set_state_done/"));
    }

    /// <summary>Waldur has the resource erred (its Create was stopped); its Terminate is done and removes what was built, each step once.</summary>
    private async Task TerminateErredResourceAsync(Guid resource)
    {
        _bed.Waldur.SetResourceState(resource, "Erred");
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Equal(SubscriptionState.Terminated, (await Subscription(resource)).State);
        Assert.All(ScriptedProvisioner.TerminateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
    }

    /// <summary>The resource's subscription ended terminated, each Create step ran once and each Terminate step once.</summary>
    private async Task AssertBuiltAndRemovedOnceAsync(Guid resource)
    {
        Assert.Equal(SubscriptionState.Terminated, (await Subscription(resource)).State);
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
        Assert.All(ScriptedProvisioner.TerminateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
    }

    private Task<OrderRecord> Record(Guid order) =>
        _bed.QueryAsync(db => db.Orders.AsNoTracking().SingleAsync(o => o.OrderUuid == order));

    private Task<CmpWaldurAdapter.Tenants.Subscription> Subscription(Guid resource) =>
        _bed.QueryAsync(db => db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource));

    /// <summary>
    /// Two Create orders of one organization and project at once, perhaps on two replicas: the one that records its
    /// subscription second finds the organization and project recorded after it looked for them, and records its
    /// subscription beside them, with nothing logged as a database error.
    /// </summary>
    [Fact]
    public async Task A_create_whose_organization_and_project_are_recorded_meanwhile_records_its_subscription_under_them_and_logs_no_error()
    {
        var (customer, project) = (Guid.NewGuid(), Guid.NewGuid());
        // Approved by an earlier attempt: resumed, the first transaction it begins is the one that records the subscription.
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes(), customer, project, state: "executing");
        var resource = _bed.Waldur.ResourceOf(order);
        var now = DateTimeOffset.UtcNow;
        await _bed.QueryAsync(db =>
        {
            db.Orders.Add(new OrderRecord
            {
                OrderUuid = order,
                Type = CmpWaldurAdapter.Core.Orders.OrderType.Create,
                ResourceUuid = resource,
                OfferingUuid = _bed.Offering,
                Phase = OrderPhase.Approved,
                CreatedAt = now,
                UpdatedAt = now,
            });
            return db.SaveChangesAsync();
        });
        _beforeNextTransaction.Stage(() => _bed.QueryAsync(db =>
        {
            db.Customers.Add(new Customer { Id = customer, Name = "Org", CreatedAt = now, UpdatedAt = now });
            db.Workspaces.Add(new Workspace { Id = project, CustomerId = customer, Name = "Project", CreatedAt = now, UpdatedAt = now });
            return db.SaveChangesAsync();
        }));

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.True(_beforeNextTransaction.Ran);
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource));
        Assert.Equal((customer, project, SubscriptionState.Active), (subscription.CustomerId, subscription.WorkspaceId, subscription.State));
        Assert.Equal((1, 1), (await _bed.QueryAsync(db => db.Customers.CountAsync(c => c.Id == customer)), await _bed.QueryAsync(db => db.Workspaces.CountAsync(w => w.Id == project))));
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }

    /// <summary>Runs something else once, just before the next database transaction begins (after the looks that precede it); its own pass through.</summary>
    private sealed class BeforeNextTransaction : DbTransactionInterceptor
    {
        private Func<Task>? _meanwhile;

        public bool Ran { get; private set; }

        public void Stage(Func<Task> meanwhile) => Volatile.Write(ref _meanwhile, meanwhile);

        public override async ValueTask<InterceptionResult<DbTransaction>> TransactionStartingAsync(DbConnection connection, TransactionStartingEventData eventData, InterceptionResult<DbTransaction> result, CancellationToken cancellationToken = default)
        {
            if (Interlocked.Exchange(ref _meanwhile, null) is { } meanwhile)
            {
                await meanwhile();
                Ran = true;
            }

            return result;
        }
    }
}
