using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>
/// Upstream faults mid-provisioning: transient ones (5xx, timeouts, RAGFlow's code 100 and its "internal"
/// code-102 catch-alls) keep the order executing until the upstream recovers; permanent ones err it with a
/// message the buyer can read.
/// </summary>
public sealed class TenantFaultTests : IAsyncLifetime
{
    private const string Code100 = """{"code":100,"message":"ConnectionError('Elasticsearch is unreachable')"}""";
    private const string Code102Internal = """{"code":102,"message":"Internal server error"}""";
    private const string Code102Database = """{"code":102,"message":"Database operation failed"}""";

    private TenantTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await TenantTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    public static TheoryData<string, string, string, int, string?, int> TransientFaults => new()
    {
        // upstream, method, path, HTTP status, body, times
        { "langflow", "POST", "/api/v1/users/", 503, null, 2 },
        { "langflow", "GET", "/api/v1/users/", 500, null, 7 },
        { "langflow", "POST", "/api/v1/api_key/", 502, null, 1 },
        { "langflow", "GET", "/api/v1/projects/", 504, null, 4 },
        { "langflow", "POST", "/api/v1/flows/", 0, null, 2 },
        { "ragflow", "POST", "/api/v1/datasets", 200, Code100, 2 },
        { "ragflow", "GET", "/api/v1/datasets", 200, Code102Internal, 5 },
        { "ragflow", "POST", "/api/v1/datasets", 200, Code102Database, 1 },
        { "ragflow", "POST", "/api/v1/datasets", 502, "<html><body>502 Bad Gateway</body></html>", 1 },
    };

    [Theory]
    [MemberData(nameof(TransientFaults))]
    public async Task A_transient_upstream_fault_keeps_the_order_executing_until_it_heals(string upstream, string method, string path, int status, string? body, int times)
    {
        await _bed.StartServicesAsync();
        Fake(upstream).Fail(method, path, status, times, body: body);
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("executing", _bed.Waldur.OrderState(order));
        Assert.Equal(SubscriptionState.Provisioning, (await _bed.SubscriptionAsync(_bed.Waldur.ResourceOf(order))).State);

        var (outcome, _) = await _bed.ProcessUntilSettledAsync(order);

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Single(_bed.Langflow.Users);
        Assert.Single(_bed.Langflow.ApiKeys);
        Assert.Single(_bed.Langflow.Flows);
        Assert.Single(_bed.Ragflow.Datasets);
    }

    [Fact]
    public async Task The_running_server_retries_an_order_stuck_on_an_upstream_outage_until_it_recovers()
    {
        var server = await _bed.StartServerAsync();
        _bed.Ragflow.Break("POST", "/api/v1/datasets", 503);
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Ragflow.Count("POST", "/api/v1/datasets") >= 4, TimeSpan.FromSeconds(15), "the worker keeps retrying the dataset");
        Assert.Equal("executing", _bed.Waldur.OrderState(order));
        Assert.Equal(1, _bed.Langflow.Count("POST", "/api/v1/flows/")); // finished steps are not repeated

        _bed.Ragflow.Heal();
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(15));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Single(_bed.Ragflow.Datasets);
    }

    [Fact]
    public async Task Timeouts_are_transient_and_an_upstream_down_for_a_while_only_delays_the_order()
    {
        _bed.Settings["Langflow:AttemptTimeout"] = "00:00:01";
        await _bed.StartServicesAsync();
        // Longer than the one-second attempt timeout: the create is abandoned, nothing is made.
        _bed.Langflow.Fail("POST", "/api/v1/projects/", 201, times: 1, delay: TimeSpan.FromSeconds(1.5));
        _bed.Ragflow.Break("GET", "/api/v1/datasets", 503);
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        var deferrals = 0;
        for (; deferrals < 3; deferrals++)
        {
            await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
            Assert.Equal("executing", _bed.Waldur.OrderState(order));
        }

        _bed.Ragflow.Heal();
        var (outcome, _) = await _bed.ProcessUntilSettledAsync(order);

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Single(_bed.Langflow.Projects, p => p.Name == $"cmp-{_bed.Waldur.ResourceOf(order):N}");
        Assert.Single(_bed.Ragflow.Datasets);
    }

    [Fact]
    public async Task A_dataset_rejected_by_ragflow_errs_the_order_with_a_clear_message_and_terminate_still_cleans_up()
    {
        await _bed.StartServicesAsync();
        _bed.Ragflow.Fail("POST", "/api/v1/datasets", 200, times: 1,
            body: """{"code":101,"message":"Field: <embedding_model> - Message: <Unsupported model: bge@BAAI>"}""");
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(order);

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("erred", _bed.Waldur.OrderState(order));
        var message = _bed.Waldur.Order(order)["error_message"]!.GetValue<string>();
        Assert.StartsWith("The knowledge base could not be created: the knowledge-base service refused the request (code 101).", message);
        Assert.Contains(order.ToString(), message);
        Assert.DoesNotContain(RagflowFake.TenantId, message);
        Assert.False(string.IsNullOrEmpty(_bed.Waldur.Resource(resource)["backend_id"]!.GetValue<string>()));
        Assert.Equal(SubscriptionState.Erred, (await _bed.SubscriptionAsync(resource)).State);
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_erred/"));

        // What was built before the failure is not left behind, the buyer is told what went, and nothing is served after.
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Equal("Terminated", _bed.Waldur.Resource(resource)["state"]!.GetValue<string>());
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.ApiKeys);
        Assert.Empty(_bed.Langflow.Flows);
        Assert.DoesNotContain(_bed.Langflow.Projects, p => p.Name.StartsWith("cmp-", StringComparison.Ordinal));
        Assert.Empty(_bed.Ragflow.Datasets);
        var closing = _bed.Waldur.Resource(resource)["report"]![0]!;
        Assert.Equal("Subscription closed", closing["header"]!.GetValue<string>());
        Assert.Contains("- The agent's private workspace.", closing["body"]!.GetValue<string>());
        var terminated = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Terminated, terminated.State);
        Assert.NotNull(CmpWaldurAdapter.Api.ApiCaller.Refusal(terminated));
    }

    [Fact]
    public async Task A_create_erred_by_a_ragflow_refusal_that_staff_move_back_is_picked_up_by_the_poll_and_done_with_one_tenant()
    {
        _bed.Settings["Orders:PollInterval"] = "00:00:00.300";
        var server = await _bed.StartServerAsync();
        var inbox = server.Services.GetRequiredService<OrderInbox>();
        _bed.Ragflow.Fail("POST", "/api/v1/datasets", 200, times: 1,
            body: """{"code":101,"message":"Field: <embedding_model> - Message: <Unsupported model: bge@BAAI>"}""");
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(order);

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "erred", TimeSpan.FromSeconds(15), "the poll finds the order and RAGFlow's refusal errs it");
        // Its executing state was announced too (recent Waldur sends an event for every transition) and handled.
        await inbox.EnqueueAsync(order, "executing", "event", refeed: false, CancellationToken.None);
        await Eventually.TrueAsync(async () => await _bed.QueryAsync(db => db.OrderInbox.Where(e => e.OrderUuid == order).AllAsync(e => e.Status == InboxStatus.Done)),
            TimeSpan.FromSeconds(15), "every announcement of the order is handled");

        // RAGFlow takes the dataset now; staff move the order back to executing, as Waldur allows from erred.
        await _bed.Waldur.StaffSetsOrderExecutingAsync(order);

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(15), "the poll finds the order moved back and it is worked again");
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Equal(1, _bed.Waldur.Count("POST", ".*/set_state_done/"));
        // The tenant exists once: what was built before the refusal was kept, not built twice.
        Assert.Single(_bed.Langflow.Users);
        Assert.Single(_bed.Langflow.Projects, p => p.Name == $"cmp-{resource:N}");
        Assert.Single(_bed.Ragflow.Datasets);
        Assert.Equal(1, _bed.Langflow.Count("POST", "/api/v1/users/"));
        var subscription = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.Null(CmpWaldurAdapter.Api.ApiCaller.Refusal(subscription));
        Assert.Contains(_bed.Logs.Lines, line => line.Contains($"Order {order} (Create) was erred, and Waldur shows it executing again: staff moved it back", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Terminate_cleans_up_with_the_users_login_when_langflow_refuses_the_stored_key()
    {
        await _bed.StartServicesAsync();
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(create)).Outcome);
        // An administrator deleted the adapter's key in Langflow's settings.
        _bed.Langflow.DeleteApiKeys(_ => true);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, _bed.Waldur.ResourceOf(create));

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Empty(_bed.Langflow.Flows);
        Assert.DoesNotContain(_bed.Langflow.Projects, p => p.Name.StartsWith("cmp-", StringComparison.Ordinal));
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Ragflow.Datasets);
    }

    [Fact]
    public async Task Terminate_completes_when_the_langflow_user_was_deleted_with_everything_it_owned()
    {
        await _bed.StartServicesAsync();
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(create)).Outcome);
        _bed.Langflow.DeleteUser(Assert.Single(_bed.Langflow.Users).Id);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, _bed.Waldur.ResourceOf(create));

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Equal(SubscriptionState.Terminated, (await _bed.SubscriptionAsync(_bed.Waldur.ResourceOf(create))).State);
    }

    [Fact]
    public async Task Wrong_langflow_superuser_credentials_err_the_order_as_an_operator_problem()
    {
        _bed.Settings["Langflow:SuperuserPassword"] = "not-the-password";
        await _bed.StartServicesAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        var message = _bed.Waldur.Order(order)["error_message"]!.GetValue<string>();
        Assert.StartsWith("The agent runtime account for your project could not be created: the agent runtime refused the provider's credentials", message);
        Assert.DoesNotContain("not-the-password", message);
        Assert.DoesNotContain(_bed.Logs.Lines, line => line.Contains("not-the-password", StringComparison.Ordinal));
        Assert.Empty(_bed.Langflow.Users);
    }

    [Fact]
    public async Task A_wrong_ragflow_key_errs_the_order_as_an_operator_problem()
    {
        _bed.Settings["Ragflow:ApiKey"] = "ragflow-revoked-key";
        await _bed.StartServicesAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        Assert.Equal(OrderOutcome.Erred, await _bed.Processor.ProcessAsync(order, CancellationToken.None));

        var message = _bed.Waldur.Order(order)["error_message"]!.GetValue<string>();
        Assert.StartsWith("The knowledge base could not be created: the knowledge-base service refused the provider's credentials", message);
    }

    private FakeUpstream Fake(string upstream) => upstream == "langflow" ? _bed.Langflow.Upstream : _bed.Ragflow.Upstream;
}
