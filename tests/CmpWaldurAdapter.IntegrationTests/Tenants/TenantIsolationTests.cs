using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Contracts;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;
using WireMock;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>
/// Two buyers (different organizations and projects), each with a subscription. Every upstream call made for
/// buyer A's orders names only A's user key, flow, project and dataset (the superuser appears only on user
/// administration), and nothing of buyer B's, and the other way round.
/// </summary>
public sealed partial class TenantIsolationTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_key_of_the_tenant_user_the_adapter_did_not_make_is_deleted_when_the_project_is_next_provisioned()
    {
        var project = Guid.NewGuid();
        await _bed.SubscribeAsync(project: project);
        var user = Assert.Single(_bed.Langflow.Users);
        // Made by whoever held cmp-<project> before the adapter adopted it (another deployment, a restored database).
        var foreign = _bed.Langflow.AddApiKey(user.Id, "someone-elses");

        await _bed.SubscribeAsync(project: project);

        Assert.Null(_bed.Langflow.KeyOwner(foreign));
        var kept = Assert.Single(_bed.Langflow.ApiKeys);
        Assert.Equal((await _bed.WorkspaceAsync(project)).LangflowApiKeyId, kept.Id.ToString());
        Assert.Contains(_bed.Logs.Lines, l => l.Contains("someone-elses", StringComparison.Ordinal) && l.Contains("did not make it", StringComparison.Ordinal));
        Assert.DoesNotContain(_bed.Logs.Lines, l => l.Contains(foreign, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_stray_key_deleted_by_someone_else_between_the_list_and_the_delete_does_not_fail_the_order()
    {
        var project = Guid.NewGuid();
        await _bed.SubscribeAsync(project: project);
        var user = Assert.Single(_bed.Langflow.Users);
        // Minted by an order of the project that lost the race to store its key.
        var stray = _bed.Langflow.AddApiKey(user.Id, CmpWaldurAdapter.Provisioning.TenantNames.ApiKeyName);
        // Another order of the project (or a reconcile) deletes it right after this order listed the user's keys:
        // Langflow 1.4.2 answers this order's delete with 400 "API Key not found".
        _bed.Langflow.Observe = (request, response) =>
        {
            if (request.Method == "GET" && request.Path == "/api/v1/api_key/" && response.Status == 200)
            {
                _bed.Langflow.Observe = null;
                _bed.Langflow.DeleteApiKeys(k => k.Secret == stray);
            }
        };
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes(), project: project);

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(order)).Outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(order));
        Assert.Equal(1, _bed.Langflow.Count("DELETE", "/api/v1/api_key/[^/]+"));
        Assert.Null(_bed.Langflow.KeyOwner(stray));
        Assert.Equal((await _bed.WorkspaceAsync(project)).LangflowApiKeyId, Assert.Single(_bed.Langflow.ApiKeys).Id.ToString());
    }

    [Fact]
    public async Task A_project_user_removed_between_the_user_step_and_the_project_step_is_made_again_and_the_order_completes()
    {
        var project = Guid.NewGuid();
        var first = await _bed.SubscribeAsync(project: project);
        // The project's other subscription is being terminated: its records say so, its user is still there.
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.ResourceUuid == first)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.State, Core.Subscriptions.SubscriptionState.Terminated)));
        var user = Assert.Single(_bed.Langflow.Users);
        // The Terminate deletes the user right after the new order's user step found it logging in.
        _bed.Langflow.Observe = (request, response) =>
        {
            if (request.Path == "/api/v1/login" && response.Status == 200
                && System.Text.Encoding.UTF8.GetString(request.BodyAsBytes ?? []).Contains($"username={user.Username}", StringComparison.Ordinal))
            {
                _bed.Langflow.Observe = null;
                _bed.Langflow.DeleteUser(user.Id);
            }
        };

        var second = await _bed.SubscribeAsync(project: project);

        var remade = Assert.Single(_bed.Langflow.Users);
        Assert.NotEqual(user.Id, remade.Id);
        var workspace = await _bed.WorkspaceAsync(project);
        Assert.Equal(remade.Id.ToString(), workspace.LangflowUserId);
        Assert.Equal(remade.Id, Assert.Single(_bed.Langflow.ApiKeys).UserId);
        var subscription = await _bed.SubscriptionAsync(second);
        Assert.Contains(_bed.Langflow.Flows, f => f.Id.ToString() == subscription.LangflowFlowId && f.UserId == remade.Id);
    }

    [Fact]
    public async Task A_tenant_key_removed_between_the_project_step_and_the_flow_step_is_made_again_and_the_order_completes()
    {
        // An administrator deletes the key in Langflow's settings right after the project step used it.
        _bed.Langflow.Observe = (request, response) =>
        {
            if (request.Method == "POST" && request.Path == "/api/v1/projects/" && response.Status is 200 or 201)
            {
                _bed.Langflow.Observe = null;
                _bed.Langflow.DeleteApiKeys(_ => true);
            }
        };
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(order)).Outcome);

        var subscription = await _bed.SubscriptionAsync(_bed.Waldur.ResourceOf(order));
        var key = Assert.Single(_bed.Langflow.ApiKeys);
        Assert.Equal(key.Id.ToString(), (await _bed.WorkspaceAsync(subscription.WorkspaceId)).LangflowApiKeyId);
        Assert.Contains(_bed.Langflow.Flows, f => f.Id.ToString() == subscription.LangflowFlowId && f.UserId == key.UserId);
    }

    [Fact]
    public async Task Every_call_made_for_one_buyer_names_only_that_buyers_tenant()
    {
        var (aCreate, a) = await SubscribeAsync("Ada");
        var (bCreate, b) = await SubscribeAsync("Bob");
        var aUpdate = await RunAsync(_bed.Waldur.PlaceOrder("Update", _bed.Offering, a.Resource, new JsonObject { ["tone"] = "concise" }));
        var bUpdate = await RunAsync(_bed.Waldur.PlaceOrder("Update", _bed.Offering, b.Resource, new JsonObject { ["tone"] = "professional" }));
        var aTerminate = await RunAsync(_bed.Waldur.PlaceOrder("Terminate", _bed.Offering, a.Resource));

        Assert.NotEqual(a.User, b.User);
        Assert.Equal(b.User, _bed.Langflow.KeyOwner(b.Key));
        Assert.Null(_bed.Langflow.KeyOwner(a.Key));
        Assert.All(_bed.Langflow.Flows, f => Assert.Equal(b.User, f.UserId));
        Assert.Equal([b.Dataset], _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()));

        foreach (var window in new[] { aCreate, aUpdate, aTerminate })
        {
            AssertOnlyOwnTenant(window, a, b);
        }

        foreach (var window in new[] { bCreate, bUpdate })
        {
            AssertOnlyOwnTenant(window, b, a);
        }
    }

    private async Task<(Window Window, Tenant Tenant)> SubscribeAsync(string agentName)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes(agentName), Guid.NewGuid(), Guid.NewGuid());
        var window = await RunAsync(order);
        var resource = _bed.Waldur.ResourceOf(order);
        var subscription = await _bed.SubscriptionAsync(resource);
        var workspace = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        var tenant = new Tenant(
            resource,
            Guid.Parse(workspace.LangflowUserId!),
            workspace.LangflowUsername!,
            _bed.Credentials.Unprotect(workspace.LangflowApiKeyCipher!),
            Guid.Parse(subscription.LangflowProjectId!),
            Guid.Parse(subscription.LangflowFlowId!),
            subscription.RagflowDatasetId!,
            _bed.Langflow.Projects.Single(p => p.UserId.ToString() == workspace.LangflowUserId && p.Name == LangflowEmulator.DefaultProjectName).Id);
        return (window, tenant);
    }

    private async Task<Window> RunAsync(Guid order)
    {
        var start = DateTime.UtcNow;
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(order)).Outcome);
        return new Window(start, DateTime.UtcNow);
    }

    private void AssertOnlyOwnTenant(Window window, Tenant own, Tenant other)
    {
        var requests = _bed.Langflow.Requests.Select(r => (Upstream: "langflow", Request: r))
            .Concat(_bed.Ragflow.Requests.Select(r => (Upstream: "ragflow", Request: r)))
            .Where(x => x.Request.DateTime >= window.Start && x.Request.DateTime <= window.End)
            .ToList();
        Assert.NotEmpty(requests);
        foreach (var (upstream, request) in requests)
        {
            var where = $"{upstream} {request.Method} {request.Path} (made for {own.Username})";
            var everything = string.Join('\n', Content(request), string.Join('\n', request.Headers!.Select(h => $"{h.Key}: {string.Join(",", h.Value)}")));
            foreach (var foreign in other.Identifiers)
            {
                Assert.False(everything.Contains(foreign, StringComparison.OrdinalIgnoreCase), $"{where} names {foreign}, which belongs to the other buyer");
            }

            if (upstream == "ragflow")
            {
                // One service key for everyone: the dataset named is what keeps buyers apart.
                Assert.Equal($"Bearer {RagflowFake.ApiKey}", request.Headers!["Authorization"].Single());
                foreach (var id in HexIds().Matches(Content(request)).Select(m => m.Value).Where(id => id != own.Resource.ToString("N")))
                {
                    Assert.True(id == own.Dataset, $"{where} names dataset {id}, not the buyer's own {own.Dataset}");
                }

                continue;
            }

            var key = request.Headers!.TryGetValue("x-api-key", out var keys) ? keys.Single() : null;
            var bearer = request.Headers.TryGetValue("Authorization", out var authorization) ? authorization.Single()["Bearer ".Length..] : null;
            if (request.Path.StartsWith("/api/v1/users/", StringComparison.Ordinal))
            {
                Assert.True(_bed.Langflow.SuperuserId == _bed.Langflow.TokenOwner(bearer!), $"{where} must run as the superuser");
                foreach (var id in Guids().Matches(request.Path).Select(m => Guid.Parse(m.Value)))
                {
                    Assert.True(id == own.User, $"{where} names user {id}, not the buyer's own");
                }
            }
            else if (request.Path.StartsWith("/api/v1/api_key/", StringComparison.Ordinal))
            {
                Assert.True(bearer is not null ? own.User == _bed.Langflow.TokenOwner(bearer) : own.Key == key, $"{where} must run as the buyer's own user");
            }
            else if (request.Path != "/api/v1/login")
            {
                Assert.True(own.Key == key, $"{where} must carry the buyer's own key");
                Assert.Null(bearer);
                foreach (var id in Guids().Matches(Content(request)).Select(m => Guid.Parse(m.Value)))
                {
                    Assert.True(id == own.Flow || id == own.Project || id == own.DefaultProject || id == own.Resource, $"{where} names {id}, not the buyer's own flow or project");
                }
            }
        }
    }

    /// <summary>Path, query and body as sent (decoded), without headers (trace ids are hex too).</summary>
    private static string Content(IRequestMessage request) =>
        Uri.UnescapeDataString(request.ToHttpRequestRecord().PathAndQuery) + "\n" + (request.Body ?? string.Empty);

    [GeneratedRegex("[0-9a-f]{32}")]
    private static partial Regex HexIds();

    [GeneratedRegex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")]
    private static partial Regex Guids();

    private sealed record Window(DateTime Start, DateTime End);

    /// <summary>A buyer's tenant; <paramref name="DefaultProject"/> is the project Langflow gives every user (removed with the user).</summary>
    private sealed record Tenant(Guid Resource, Guid User, string Username, string Key, Guid Project, Guid Flow, string Dataset, Guid DefaultProject)
    {
        public IEnumerable<string> Identifiers =>
            [User.ToString(), User.ToString("N"), Username, Key, Project.ToString(), Project.ToString("N"), Flow.ToString(), Flow.ToString("N"), Dataset, Resource.ToString("N"), Resource.ToString(), DefaultProject.ToString()];
    }
}
