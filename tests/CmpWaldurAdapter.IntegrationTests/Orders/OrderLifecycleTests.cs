using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

public sealed class OrderLifecycleOnSqliteTests() : OrderLifecycleTests(DatabaseProvider.Sqlite);

public sealed class OrderLifecycleOnPostgresTests() : OrderLifecycleTests(DatabaseProvider.Postgres);

/// <summary>The whole order lifecycle against a WireMock Waldur, on each database the adapter supports.</summary>
public abstract class OrderLifecycleTests(DatabaseProvider provider) : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync(provider);
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Create_order_is_approved_provisioned_reported_and_done()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Ada"));
        var resource = _bed.Waldur.ResourceOf(order);

        var outcome = await _bed.Processor.ProcessAsync(order, CancellationToken.None);

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync());
        Assert.Equal(resource, subscription.ResourceUuid);
        Assert.Equal(SubscriptionState.Active, subscription.State);
        var configuration = JsonNode.Parse(subscription.Configuration)!.AsObject();
        Assert.Equal("Ada", configuration["agent_name"]!.GetValue<string>());
        Assert.Equal("friendly", configuration["tone"]!.GetValue<string>()); // the form's default
        Assert.Equal(3, configuration["escalate_after"]!.GetValue<long>());
        Assert.False(configuration.ContainsKey("name"), "Waldur's generic keys are not agent settings");

        var waldurResource = _bed.Waldur.Resource(resource);
        Assert.Equal(subscription.Id.ToString(), waldurResource["backend_id"]!.GetValue<string>());
        var report = waldurResource["report"]!.AsArray();
        Assert.Equal("Your agent is ready", report[0]!["header"]!.GetValue<string>());
        Assert.Contains("Customer Support Agent is provisioned", report[0]!["body"]!.GetValue<string>());
        Assert.DoesNotContain(WaldurFake.Token, waldurResource.ToJsonString());
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));

        // The exact provider-side sequence: approve before anything, backend id before the steps'
        // results are reported, the order re-read before the agent is served, and done last, after re-reading it again.
        var calls = _bed.Waldur.Requests.Where(r => r.Method != "GET" || r.Path.Contains("/marketplace-orders/", StringComparison.Ordinal))
            .Select(r => $"{r.Method} {r.Path.Replace(order.ToString(), "{order}").Replace(resource.ToString(), "{resource}")}").ToList();
        Assert.Equal(
            [
                "GET /api/marketplace-orders/{order}/",
                "POST /api/marketplace-orders/{order}/approve_by_provider/",
                "POST /api/marketplace-provider-resources/{resource}/set_backend_id/",
                "GET /api/marketplace-orders/{order}/",
                "POST /api/marketplace-provider-resources/{resource}/submit_report/",
                "GET /api/marketplace-orders/{order}/",
                "POST /api/marketplace-orders/{order}/set_state_done/",
            ], calls);
    }

    [Fact]
    public async Task Update_order_applies_changed_options_to_the_stored_configuration()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Ada"));
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(create, CancellationToken.None));
        var resource = _bed.Waldur.ResourceOf(create);

        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["tone"] = "formal" });
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(update, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(update));
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync());
        var configuration = JsonNode.Parse(subscription.Configuration)!.AsObject();
        Assert.Equal("formal", configuration["tone"]!.GetValue<string>());
        Assert.Equal("Ada", configuration["agent_name"]!.GetValue<string>());
        Assert.Equal(2, subscription.ConfigurationVersion);
        Assert.Equal(1, _bed.Provisioner.Runs("update-agent"));
        Assert.Equal("Settings updated", _bed.Waldur.Resource(resource)["report"]![0]!["header"]!.GetValue<string>());
    }

    [Fact]
    public async Task Update_order_from_a_HomePort_option_change_applies_the_wrapped_new_options()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Ada"));
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(create, CancellationToken.None));
        var resource = _bed.Waldur.ResourceOf(create);

        // What Waldur's update_options creates when the offering sets create_orders_on_resource_option_change.
        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["new_options"] = new JsonObject { ["tone"] = "formal" } });
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(update, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(update));
        var configuration = JsonNode.Parse((await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).Configuration)!.AsObject();
        Assert.Equal("formal", configuration["tone"]!.GetValue<string>());
        Assert.Equal("Ada", configuration["agent_name"]!.GetValue<string>());
        Assert.False(configuration.ContainsKey("new_options"));
    }

    [Fact]
    public async Task Update_order_that_changes_only_limits_completes_and_keeps_the_settings()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Ada"));
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(create, CancellationToken.None));
        var resource = _bed.Waldur.ResourceOf(create);
        var before = (await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).Configuration;

        // A limits change carries Waldur's record of the old limits (and the resource name), not settings.
        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["old_limits"] = new JsonObject { ["credits"] = 100 }, ["name"] = "Ada" });
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(update, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(update));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(before), JsonNode.Parse((await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).Configuration)));
    }

    [Fact]
    public async Task Update_order_with_an_invalid_value_is_rejected_and_changes_nothing()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Ada"));
        await _bed.Processor.ProcessAsync(create, CancellationToken.None);
        var resource = _bed.Waldur.ResourceOf(create);

        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["escalate_after"] = 99 });
        Assert.Equal(OrderOutcome.Rejected, await _bed.Processor.ProcessAsync(update, CancellationToken.None));

        Assert.Equal("rejected", _bed.Waldur.OrderState(update));
        Assert.Contains("between 1 and 10", _bed.Waldur.Order(update)["provider_rejection_comment"]!.GetValue<string>());
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync());
        Assert.Equal(3, JsonNode.Parse(subscription.Configuration)!["escalate_after"]!.GetValue<long>());
    }

    [Fact]
    public async Task Terminate_order_removes_the_tenant_and_reports_what_was_removed()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await _bed.Processor.ProcessAsync(create, CancellationToken.None);
        var resource = _bed.Waldur.ResourceOf(create);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(terminate, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Equal("Terminated", _bed.Waldur.Resource(resource)["state"]!.GetValue<string>());
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync());
        Assert.Equal(SubscriptionState.Terminated, subscription.State);
        Assert.NotNull(subscription.TerminatedAt);
        var report = _bed.Waldur.Resource(resource)["report"]![0]!;
        Assert.Equal("Subscription closed", report["header"]!.GetValue<string>());
        Assert.Contains("remove-runtime done", report["body"]!.GetValue<string>());
        Assert.Contains("remove-knowledge-base done", report["body"]!.GetValue<string>());
    }

    [Fact]
    public async Task Invalid_attributes_are_rejected_with_a_readable_comment_and_nothing_is_provisioned()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, new JsonObject { ["tone"] = "sarcastic", ["escalate_after"] = "many", ["colour"] = "red" });

        Assert.Equal(OrderOutcome.Rejected, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("rejected", _bed.Waldur.OrderState(order));
        var comment = _bed.Waldur.Order(order)["provider_rejection_comment"]!.GetValue<string>();
        Assert.Contains("Agent name is required.", comment);
        Assert.Contains("Tone must be one of: friendly, formal.", comment);
        Assert.Contains("must be a whole number", comment);
        Assert.Contains("'colour' is not a setting of this offering.", comment);
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/approve_by_provider/"));
        Assert.Equal(0, _bed.Provisioner.TotalRuns);
        Assert.False(await _bed.QueryAsync(db => db.Subscriptions.AnyAsync()));
    }

    [Fact]
    public async Task A_storm_of_503s_delays_the_order_but_never_errs_it()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // More failures than one call's retries: the processor must defer, then succeed.
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503, times: 7);
        _bed.Waldur.Fail("POST", "/api/marketplace-provider-resources/.*/set_backend_id/", 503, times: 5);
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/set_state_done/", 429, times: 4);
        _bed.Provisioner.FailTransiently("create-knowledge-base", times: 3);

        var deferrals = 0;
        OrderOutcome outcome;
        while (true)
        {
            try
            {
                outcome = await _bed.Processor.ProcessAsync(order, CancellationToken.None);
                break;
            }
            catch (OrderDeferredException)
            {
                deferrals++;
                Assert.True(deferrals < 30, "the order never completed");
            }
        }

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.True(deferrals >= 4, $"expected the storm to defer the order several times, got {deferrals}");
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Equal(1, _bed.Provisioner.Runs("create-runtime"));
        Assert.Equal(1, _bed.Provisioner.Runs("configure-agent"));
        Assert.Equal(SubscriptionState.Active, (await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).State);
    }

    [Fact]
    public async Task A_permanent_provisioning_error_marks_the_order_erred_with_a_clear_message()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Provisioner.FailPermanently("create-knowledge-base", "The knowledge base could not be created: the template is invalid.");

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        var message = _bed.Waldur.Order(order)["error_message"]!.GetValue<string>();
        Assert.Contains("The knowledge base could not be created: the template is invalid.", message);
        Assert.Contains(order.ToString(), message);
        // backend_id was set before the failure, so Waldur keeps the resource as Erred rather than dropping it.
        Assert.False(string.IsNullOrEmpty(_bed.Waldur.Resource(_bed.Waldur.ResourceOf(order))["backend_id"]!.GetValue<string>()));
        Assert.Equal(0, _bed.Provisioner.Runs("configure-agent"));
        Assert.Equal(SubscriptionState.Erred, (await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).State);

        // Looking at it again does nothing more: the order is final.
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
    }

    [Fact]
    public async Task A_create_from_a_project_with_a_500_character_name_is_done_with_the_names_clipped_to_their_columns()
    {
        var project = Guid.NewGuid();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes(), project: project);
        // Waldur allows project names of 500 characters; the adapter keeps 300 (PostgreSQL refuses more), and
        // does not cut the emoji straddling the limit in half.
        _bed.Waldur.RenameProject(project, new string('p', 299) + "🚀" + new string('x', 199));

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(order));
        var workspace = await _bed.QueryAsync(db => db.Workspaces.SingleAsync(w => w.Id == project));
        Assert.Equal(new string('p', 299), workspace.Name);
    }

    [Fact]
    public async Task An_organization_granted_credits_before_its_first_order_gets_its_waldur_name_from_that_order()
    {
        // The operator grants welcome credits (cmp-adapter credits grant) before the organization has ordered
        // anything: the adapter does not know its name yet.
        var customer = Guid.NewGuid();
        var project = Guid.NewGuid();
        await _bed.Services.GetRequiredService<CreditLedger>().GrantAsync(customer, 100, "welcome credits");
        Assert.Equal(string.Empty, (await _bed.QueryAsync(db => db.Customers.AsNoTracking().SingleAsync(c => c.Id == customer))).Name);

        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes(), customer: customer, project: project);
        _bed.Waldur.MoveProject(project, customer, "Acme Research Institute");

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        var organization = await _bed.QueryAsync(db => db.Customers.AsNoTracking().SingleAsync(c => c.Id == customer));
        Assert.Equal("Acme Research Institute", organization.Name);
        Assert.Equal(100, (await _bed.QueryAsync(db => db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == customer))).Balance);
        Assert.Equal(customer, (await _bed.QueryAsync(db => db.Subscriptions.SingleAsync())).CustomerId);
    }

    [Fact]
    public async Task A_failure_whose_changes_the_database_refuses_still_errs_the_order_in_waldur()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // The step's result cannot be saved (here: an organization the database does not have).
        _bed.Provisioner.ChangeOnce("create-knowledge-base", context => context.Subscription.CustomerId = Guid.NewGuid());

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        var record = await _bed.QueryAsync(db => db.Orders.SingleAsync());
        Assert.Equal(OrderPhase.Erred, record.Phase);
        Assert.DoesNotContain("create-knowledge-base", record.CompletedSteps);
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync());
        Assert.Equal(SubscriptionState.Erred, subscription.State);
        Assert.True(await _bed.QueryAsync(db => db.Customers.AnyAsync(c => c.Id == subscription.CustomerId)));
    }

    [Fact]
    public async Task A_transient_failure_with_changes_the_database_refuses_defers_the_order_and_the_next_attempt_completes_it()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Provisioner.ChangeOnce("create-knowledge-base", context => context.Subscription.CustomerId = Guid.NewGuid());
        _bed.Provisioner.FailTransiently("create-knowledge-base", times: 1);

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        var record = await _bed.QueryAsync(db => db.Orders.SingleAsync());
        Assert.Equal(1, record.Attempts);
        Assert.Contains("upstream unavailable", record.LastError);

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(2, _bed.Provisioner.Runs("create-knowledge-base"));
    }

    [Fact]
    public async Task A_permanent_failure_with_a_message_longer_than_its_column_errs_the_order_in_waldur()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Provisioner.FailPermanently("create-knowledge-base", "The template is invalid: " + new string('e', 3000));

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        var record = await _bed.QueryAsync(db => db.Orders.SingleAsync());
        Assert.Equal(OrderPhase.Erred, record.Phase);
        Assert.Equal(OrderRecord.MaxErrorLength, record.LastError!.Length);
        Assert.StartsWith("The template is invalid: eee", record.LastError);
    }

    [Fact]
    public async Task A_refused_set_state_done_of_an_order_waldur_has_done_completes_it()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // Waldur sets the order done but answers 400, as it answers a repeated call (or one after someone else finished it).
        _bed.Waldur.LoseAnswer("POST", $"/api/marketplace-orders/{order}/set_state_done/", status: 400);

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(order));
        var record = await _bed.QueryAsync(db => db.Orders.SingleAsync());
        Assert.Equal(OrderPhase.Completed, record.Phase);
        Assert.Null(record.LastError);
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.DoesNotContain(_bed.Logs.Lines, line => line.Contains("failed permanently", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("/api/marketplace-provider-resources/.*/submit_report/")]
    [InlineData("/api/marketplace-orders/.*/set_state_done/")]
    public async Task A_create_whose_report_or_done_waldur_refuses_after_its_agent_went_live_is_erred_and_not_served(string refused)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", refused, 400);

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        // Erred in Waldur, so not served: the buyer is not charged for an agent Waldur shows as failed.
        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        Assert.Equal(OrderPhase.Erred, (await _bed.QueryAsync(db => db.Orders.SingleAsync())).Phase);
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.AsNoTracking().SingleAsync());
        Assert.Equal(SubscriptionState.Erred, subscription.State);
        Assert.NotNull(ApiCaller.Refusal(subscription));
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
    }

    [Theory]
    [InlineData("/api/marketplace-provider-resources/.*/submit_report/", 401)]
    [InlineData("/api/marketplace-provider-resources/.*/submit_report/", 403)]
    [InlineData("/api/marketplace-orders/.*/set_state_done/", 401)]
    public async Task A_create_whose_last_waldur_calls_refuse_the_adapters_token_waits_for_a_working_token_and_is_done(string refused, int status)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // The token expires (or loses its role) after the agent went live, and stays so for two attempts.
        _bed.Waldur.Fail("POST", refused, status, times: 2);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));

            // The operator's problem, not the buyer's: the order is not erred, and nothing is undone.
            Assert.Equal("executing", _bed.Waldur.OrderState(order));
            Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
            var record = await _bed.QueryAsync(db => db.Orders.AsNoTracking().SingleAsync());
            Assert.NotEqual(OrderPhase.Erred, record.Phase);
            Assert.Contains($"HTTP {status}", record.LastError);
        }

        Assert.Contains(_bed.Logs.Lines, line => line.Contains("Waldur refused the adapter's credentials", StringComparison.Ordinal));

        // The token works again: the next attempt finishes the order.
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.AsNoTracking().SingleAsync());
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.Null(ApiCaller.Refusal(subscription));
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
    }

    [Fact]
    public async Task A_permanent_failure_before_approval_keeps_the_order_pending_and_a_later_attempt_completes_it()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // The offering's forms cannot be read (the adapter's token lost access for a moment): nothing is approved yet.
        _bed.Waldur.Fail("GET", "/api/marketplace-provider-offerings/.*/", 403, times: 1);

        // Waldur takes "erred" only from executing: an order failed here would stay pending for ever, unheard of.
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("pending-provider", _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Contains("403", (await _bed.QueryAsync(db => db.Orders.SingleAsync())).LastError);

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("done", _bed.Waldur.OrderState(order));
    }

    [Fact]
    public async Task An_unexpected_upstream_rejection_hides_raw_details_from_the_buyer()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", "/api/marketplace-provider-resources/.*/set_backend_id/", 400, body: "{\"detail\":\"internal column backend_id overflow at db-7\"}");

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        var message = _bed.Waldur.Order(order)["error_message"]!.GetValue<string>();
        Assert.StartsWith("The agent could not be provisioned.", message);
        Assert.DoesNotContain("db-7", message);
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("db-7", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Orders_of_other_offerings_and_orders_waiting_for_the_buyer_are_left_alone()
    {
        var foreign = _bed.Waldur.AddOffering("Someone else's VM");
        var foreignOrder = _bed.Waldur.PlaceCreateOrder(foreign, new JsonObject());
        var waiting = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes(), state: "pending-consumer");

        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(foreignOrder, CancellationToken.None));
        Assert.Equal(OrderOutcome.Waiting, await _bed.Processor.ProcessAsync(waiting, CancellationToken.None));
        Assert.Equal(OrderOutcome.Ignored, await _bed.Processor.ProcessAsync(Guid.NewGuid(), CancellationToken.None));

        Assert.Equal("pending-provider", _bed.Waldur.OrderState(foreignOrder));
        Assert.Equal("pending-consumer", _bed.Waldur.OrderState(waiting));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*"));
    }

    [Fact]
    public async Task Duplicate_announcements_and_racing_processors_provision_exactly_once()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var inbox = (OrderInbox)_bed.Services.GetService(typeof(OrderInbox))!;

        // The same message five times, from the broker, a poll and an operator.
        var inserted = await Task.WhenAll(Enumerable.Range(0, 5).Select(i =>
            inbox.EnqueueAsync(order, "pending-provider", i % 2 == 0 ? "event" : "poll", refeed: false, CancellationToken.None)));
        Assert.Equal(1, inserted.Count(x => x));

        // Eight processors (think replicas) race for the same order.
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => _bed.ProcessUntilSettledAsync(order))));

        Assert.Equal(1, outcomes.Count(o => o == OrderOutcome.Completed));
        Assert.All(outcomes, o => Assert.Contains(o, new[] { OrderOutcome.Completed, OrderOutcome.Busy, OrderOutcome.Ignored }));
        Assert.All(ScriptedProvisioner.CreateSteps, step => Assert.Equal(1, _bed.Provisioner.Runs(step)));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/approve_by_provider/"));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        Assert.Equal(1, await _bed.QueryAsync(db => db.Subscriptions.CountAsync()));
    }
}
