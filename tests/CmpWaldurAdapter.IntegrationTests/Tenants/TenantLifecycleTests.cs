using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

public sealed class TenantLifecycleOnSqliteTests() : TenantLifecycleTests(DatabaseProvider.Sqlite);

public sealed class TenantLifecycleOnPostgresTests() : TenantLifecycleTests(DatabaseProvider.Postgres);

/// <summary>
/// Create → Update → Terminate of one subscription against WireMock Waldur, Langflow and RAGFlow, with the
/// exact sequence of upstream calls, on each database the adapter supports.
/// </summary>
public abstract class TenantLifecycleTests(DatabaseProvider provider) : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync(provider);
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Create_update_and_terminate_build_change_and_remove_one_isolated_tenant()
    {
        // Create
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes("Ada", "friendly"));
        var resource = _bed.Waldur.ResourceOf(create);
        var project = Guid.Parse(_bed.Waldur.Order(create)["project_uuid"]!.GetValue<string>());

        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(create, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(create));
        var subscription = await _bed.SubscriptionAsync(resource);
        var workspace = await _bed.WorkspaceAsync(project);
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.Equal(subscription.Id.ToString(), _bed.Waldur.Resource(resource)["backend_id"]!.GetValue<string>());

        var user = Assert.Single(_bed.Langflow.Users);
        Assert.Equal($"cmp-{project:N}", user.Username);
        Assert.True(user.IsActive);
        Assert.Equal(user.Id.ToString(), workspace.LangflowUserId);
        var key = Assert.Single(_bed.Langflow.ApiKeys);
        Assert.Equal((user.Id, TenantNames.ApiKeyName), (key.UserId, key.Name));
        Assert.Equal(key.Id.ToString(), workspace.LangflowApiKeyId);
        Assert.Equal(key.Secret, _bed.Credentials.Unprotect(workspace.LangflowApiKeyCipher!));
        Assert.DoesNotContain(key.Secret, workspace.LangflowApiKeyCipher!, StringComparison.Ordinal);

        var langflowProject = Assert.Single(_bed.Langflow.Projects, p => p.Name != LangflowFake.DefaultProjectName);
        Assert.Equal((user.Id, $"cmp-{resource:N}"), (langflowProject.UserId, langflowProject.Name));
        Assert.Equal(langflowProject.Id.ToString(), subscription.LangflowProjectId);
        var flow = Assert.Single(_bed.Langflow.Flows);
        Assert.Equal((user.Id, langflowProject.Id, $"{TenantTestBed.OfferingName} cmp-{resource:N}"), (flow.UserId, flow.FolderId, flow.Name));
        Assert.Equal(flow.Id.ToString(), subscription.LangflowFlowId);
        var flowJson = _bed.Langflow.Flow(flow.Id);
        Assert.Equal("PRIVATE", flowJson["access_type"]!.GetValue<string>());
        Assert.False(flowJson["mcp_enabled"]!.GetValue<bool>());
        Assert.Equal("Ada", PromptValue(flowJson, "agent_name"));
        Assert.Equal("friendly", PromptValue(flowJson, "tone"));

        var dataset = Assert.Single(_bed.Ragflow.Datasets);
        Assert.Equal($"cmp-{resource:N}", dataset["name"]!.GetValue<string>());
        Assert.Equal("me", dataset["permission"]!.GetValue<string>());
        Assert.False(dataset["parser_config"]!["raptor"]!["use_raptor"]!.GetValue<bool>());
        Assert.False(dataset["parser_config"]!["graphrag"]!["use_graphrag"]!.GetValue<bool>());
        Assert.Equal(dataset["id"]!.GetValue<string>(), subscription.RagflowDatasetId);

        var names = new Dictionary<string, string>
        {
            [user.Id.ToString()] = "{user}",
            [key.Id.ToString()] = "{key}",
            [langflowProject.Id.ToString()] = "{project}",
            [Assert.Single(_bed.Langflow.Projects, p => p.UserId == user.Id && p.Name == LangflowFake.DefaultProjectName).Id.ToString()] = "{default project}",
            [flow.Id.ToString()] = "{flow}",
            [dataset["id"]!.GetValue<string>()] = "{dataset}",
            [resource.ToString("N")] = "{resource}",
            [resource.ToString()] = "{resource}",
            [create.ToString()] = "{order}",
        };
        Assert.Equal(
            [
                "waldur: POST /api/marketplace-orders/{order}/approve_by_provider/",
                "waldur: POST /api/marketplace-provider-resources/{resource}/set_backend_id/",
                // langflow-user: the superuser logs in, looks for the project's user, creates and activates it
                "langflow: POST /api/v1/login",
                "langflow: GET /api/v1/users/?skip=0&limit=100",
                "langflow: POST /api/v1/users/",
                "langflow: PATCH /api/v1/users/{user}",
                // langflow-user-key: the user logs in once and mints its own key
                "langflow: POST /api/v1/login",
                "langflow: POST /api/v1/api_key/",
                // langflow-project (with the tenant's key): drop keys never stored, look first, then create
                "langflow: GET /api/v1/api_key/",
                "langflow: GET /api/v1/projects/",
                "langflow: POST /api/v1/projects/",
                // langflow-flow: the key checked again, look first, then create, with the tenant's key
                "langflow: GET /api/v1/api_key/",
                "langflow: GET /api/v1/flows/?get_all=true&header_flows=true",
                "langflow: POST /api/v1/flows/",
                // ragflow-dataset: look up the name (code 102 = none), create, look for renamed twins
                "ragflow: GET /api/v1/datasets?name=cmp-{resource}",
                "ragflow: POST /api/v1/datasets",
                "ragflow: GET /api/v1/datasets?name=cmp-{resource}(1)",
                "waldur: POST /api/marketplace-provider-resources/{resource}/submit_report/",
                "waldur: POST /api/marketplace-orders/{order}/set_state_done/",
            ],
            _bed.Calls(names, includeWaldur: true).Where(c => !c.StartsWith("waldur: GET", StringComparison.Ordinal)));
        var report = _bed.Waldur.Resource(resource)["report"]![0]!["body"]!.GetValue<string>();
        Assert.Contains("Your project has its own private agent runtime.", report);
        Assert.Contains("Your private knowledge base is ready for your documents.", report);
        AssertNoUpstreamSecretsOrIds(report, key.Secret, user.Id, langflowProject.Id, flow.Id, dataset["id"]!.GetValue<string>());

        // Update: a setting the prompt uses changes the flow; the stored configuration changes either way.
        var since = DateTime.UtcNow;
        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["tone"] = "professional", ["brand_colour"] = "#000000" });
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(update, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(update));
        Assert.Equal(
            [
                "langflow: GET /api/v1/flows/{flow}",
                "langflow: PATCH /api/v1/flows/{flow}",
            ],
            _bed.Calls(names, since));
        Assert.Equal("professional", PromptValue(_bed.Langflow.Flow(flow.Id), "tone"));
        var updated = await _bed.SubscriptionAsync(resource);
        Assert.Equal("#000000", JsonNode.Parse(updated.Configuration)!["brand_colour"]!.GetValue<string>());
        Assert.Contains("Your agent was updated with your new settings.", _bed.Waldur.Resource(resource)["report"]![0]!["body"]!.GetValue<string>());

        // An update of settings the flow does not use leaves it alone.
        since = DateTime.UtcNow;
        var cosmetic = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["brand_colour"] = "#ffffff" });
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(cosmetic, CancellationToken.None));
        Assert.Equal(["langflow: GET /api/v1/flows/{flow}"], _bed.Calls(names, since));
        Assert.Contains("Your new settings were saved.", _bed.Waldur.Resource(resource)["report"]![0]!["body"]!.GetValue<string>());

        // Terminate
        since = DateTime.UtcNow;
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        names[terminate.ToString()] = "{terminate}";
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(terminate, CancellationToken.None));

        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Equal(
            [
                "waldur: POST /api/marketplace-orders/{terminate}/approve_by_provider/",
                // ragflow-dataset-delete: the recorded dataset plus anything named for the resource, one id per DELETE
                "ragflow: GET /api/v1/datasets?name=cmp-{resource}",
                "ragflow: GET /api/v1/datasets?name=cmp-{resource}(1)",
                "ragflow: DELETE /api/v1/datasets",
                "langflow: GET /api/v1/flows/?get_all=true&header_flows=true",
                "langflow: DELETE /api/v1/flows/{flow}",
                "langflow: GET /api/v1/projects/",
                "langflow: DELETE /api/v1/projects/{project}",
                // langflow-user-delete-if-last: the project's last subscription is gone; as the tenant, every flow left
                // (Langflow's user delete would leave them) and the projects go first, then the user
                "langflow: GET /api/v1/flows/?get_all=true&header_flows=true",
                "langflow: GET /api/v1/projects/",
                "langflow: DELETE /api/v1/projects/{default project}",
                "langflow: DELETE /api/v1/users/{user}",
                "waldur: POST /api/marketplace-provider-resources/{resource}/submit_report/",
                "waldur: POST /api/marketplace-orders/{terminate}/set_state_done/",
            ],
            _bed.Calls(names, since, includeWaldur: true).Where(c => !c.StartsWith("waldur: GET", StringComparison.Ordinal)));
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.ApiKeys);
        Assert.DoesNotContain(_bed.Langflow.Projects, p => p.UserId != _bed.Langflow.SuperuserId);
        Assert.Empty(_bed.Langflow.Flows);
        var terminated = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Terminated, terminated.State);
        Assert.Null(terminated.LangflowFlowId);
        Assert.Null(terminated.RagflowDatasetId);
        var emptied = await _bed.WorkspaceAsync(project);
        Assert.Null(emptied.LangflowUserId);
        Assert.Null(emptied.LangflowApiKeyCipher);
        var closing = _bed.Waldur.Resource(resource)["report"]![0]!;
        Assert.Equal("Subscription closed", closing["header"]!.GetValue<string>());
        var removed = closing["body"]!.GetValue<string>();
        Assert.Contains("- The knowledge base, with all its documents.", removed);
        Assert.Contains("- The agent, with its conversation history.", removed);
        Assert.Contains("- The agent's private workspace.", removed);
        Assert.Contains("- Your project's private agent runtime", removed);
        // The adapter's own keys for the subscription go too (the API keys' revoke-adapter-keys step).
        Assert.Contains("- 1 API key was revoked.", removed);
        Assert.True(await _bed.QueryAsync(db => db.ApiKeys.Where(k => k.SubscriptionId == terminated.Id).AllAsync(k => k.RevokedAt != null)));
        Assert.Equal(0, _bed.Ragflow.UnscopedDeletes);
    }

    [Fact]
    public async Task An_update_order_gives_a_flow_built_before_conversation_memory_the_templates_memory()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes("Ada", "friendly"));
        var resource = _bed.Waldur.ResourceOf(create);
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(create, CancellationToken.None));
        var flow = Guid.Parse((await _bed.SubscriptionAsync(resource)).LangflowFlowId!);
        _bed.Langflow.ReplaceFlowData(flow, WithoutMemory(_bed.Langflow.Flow(flow)["data"]!.AsObject()));
        Assert.DoesNotContain("{history}", PromptValue(_bed.Langflow.Flow(flow), "template"), StringComparison.Ordinal);

        // A setting the prompt does not name: only the missing {history} makes the flow differ from the template.
        var update = _bed.Waldur.PlaceOrder("Update", _bed.Offering, resource, new JsonObject { ["brand_colour"] = "#123456" });
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(update, CancellationToken.None));

        var data = _bed.Langflow.Flow(flow)["data"]!.AsObject();
        Assert.Contains(data["nodes"]!.AsArray(), n => n!["id"]!.GetValue<string>() == "Memory-cmp01");
        Assert.Contains(data["edges"]!.AsArray(), e => e!["source"]!.GetValue<string>() == "Memory-cmp01" && e["target"]!.GetValue<string>() == FlowTemplates.PromptComponentId);
        Assert.Contains("{history}", PromptValue(_bed.Langflow.Flow(flow), "template"), StringComparison.Ordinal);
        Assert.Equal("Ada", PromptValue(_bed.Langflow.Flow(flow), "agent_name"));
        Assert.Contains("Your agent was updated with your new settings.", _bed.Waldur.Resource(resource)["report"]![0]!["body"]!.GetValue<string>());
    }

    /// <summary>The flow as builds before conversation memory made it: no Message History node, edge or {history}.</summary>
    private static JsonObject WithoutMemory(JsonObject data)
    {
        var old = data.DeepClone().AsObject();
        var nodes = old["nodes"]!.AsArray();
        nodes.Remove(nodes.Single(n => n!["id"]!.GetValue<string>() == "Memory-cmp01"));
        var edges = old["edges"]!.AsArray();
        edges.Remove(edges.Single(e => e!["source"]!.GetValue<string>() == "Memory-cmp01"));
        var prompt = nodes.Single(n => n!["id"]!.GetValue<string>() == FlowTemplates.PromptComponentId)!["data"]!["node"]!["template"]!.AsObject();
        prompt.Remove("history");
        var text = prompt["template"]!["value"]!.GetValue<string>();
        prompt["template"]!["value"] = text[..text.IndexOf("\n\nConversation so far", StringComparison.Ordinal)];
        return old;
    }

    [Fact]
    public async Task A_second_subscription_of_the_project_reuses_its_user_which_goes_with_the_last_one()
    {
        var project = Guid.NewGuid();
        var customer = Guid.NewGuid();
        var first = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"), customer, project);
        var second = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"), customer, project);

        var user = Assert.Single(_bed.Langflow.Users);
        Assert.Single(_bed.Langflow.ApiKeys);
        Assert.Equal(2, _bed.Langflow.Flows.Count);
        Assert.All(_bed.Langflow.Flows, f => Assert.Equal(user.Id, f.UserId));
        Assert.Equal(2, _bed.Ragflow.Datasets.Count);
        Assert.Equal(1, _bed.Langflow.Count("POST", "/api/v1/users/"));
        Assert.Equal(1, _bed.Langflow.Count("POST", "/api/v1/api_key/"));

        var terminateFirst = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, first);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminateFirst)).Outcome);
        Assert.Single(_bed.Langflow.Users);
        var remaining = Assert.Single(_bed.Langflow.Flows);
        Assert.Equal((await _bed.SubscriptionAsync(second)).LangflowFlowId, remaining.Id.ToString());
        Assert.Equal([(await _bed.SubscriptionAsync(second)).RagflowDatasetId], _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()));
        Assert.DoesNotContain("agent runtime", _bed.Waldur.Resource(first)["report"]![0]!["body"]!.GetValue<string>());

        var terminateSecond = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, second);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminateSecond)).Outcome);
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Contains("agent runtime", _bed.Waldur.Resource(second)["report"]![0]!["body"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_last_two_subscriptions_of_a_project_terminated_at_once_do_not_leave_its_user_behind()
    {
        var project = Guid.NewGuid();
        var customer = Guid.NewGuid();
        var first = await _bed.SubscribeAsync(TenantTestBed.Attributes("Ada"), customer, project);
        var second = await _bed.SubscribeAsync(TenantTestBed.Attributes("Bob"), customer, project);
        // The second's Terminate runs alongside: its flow and project are gone, and it reaches its user step as the first does.
        var secondId = (await _bed.SubscriptionAsync(second)).Id;
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == secondId).ExecuteUpdateAsync(set => set
            .SetProperty(s => s.State, SubscriptionState.Terminating)
            .SetProperty(s => s.LangflowFlowId, (string?)null)
            .SetProperty(s => s.LangflowProjectId, (string?)null)));

        var terminateFirst = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, first);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminateFirst)).Outcome);

        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.ApiKeys);
    }

    [Fact]
    public async Task Subscriptions_of_one_project_ordered_at_once_end_up_sharing_one_user_and_one_key()
    {
        var (customer, project) = (Guid.NewGuid(), Guid.NewGuid());
        var orders = Enumerable.Range(0, 3)
            .Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes($"Agent {i}"), customer, project))
            .ToList();

        var outcomes = await Task.WhenAll(orders.Select(order => Task.Run(() => _bed.ProcessUntilSettledAsync(order, maxAttempts: 60))));

        Assert.All(outcomes, o => Assert.Equal(OrderOutcome.Completed, o.Outcome));
        var user = Assert.Single(_bed.Langflow.Users);
        var key = Assert.Single(_bed.Langflow.ApiKeys);
        var workspace = await _bed.WorkspaceAsync(project);
        Assert.Equal((user.Id.ToString(), key.Secret), (workspace.LangflowUserId, _bed.Credentials.Unprotect(workspace.LangflowApiKeyCipher!)));
        Assert.Equal(3, _bed.Langflow.Flows.Count);
        Assert.All(_bed.Langflow.Flows, f => Assert.Equal(user.Id, f.UserId));
        Assert.Equal(3, _bed.Ragflow.Datasets.Count);
        foreach (var order in orders)
        {
            var subscription = await _bed.SubscriptionAsync(_bed.Waldur.ResourceOf(order));
            Assert.Contains(_bed.Langflow.Flows, f => f.Id.ToString() == subscription.LangflowFlowId);
        }
    }

    [Fact]
    public async Task A_restore_after_terminate_builds_the_tenant_again_under_the_same_subscription()
    {
        var resource = await _bed.SubscribeAsync();
        var id = (await _bed.SubscriptionAsync(resource)).Id;
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        var restore = _bed.Waldur.PlaceOrder("Restore", _bed.Offering, resource, TenantTestBed.Attributes());
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(restore)).Outcome);

        var subscription = await _bed.SubscriptionAsync(resource);
        Assert.Equal((id, SubscriptionState.Active), (subscription.Id, subscription.State));
        Assert.Single(_bed.Langflow.Users);
        Assert.Equal(subscription.LangflowFlowId, Assert.Single(_bed.Langflow.Flows).Id.ToString());
        Assert.Equal(subscription.RagflowDatasetId, Assert.Single(_bed.Ragflow.Datasets)["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_restore_from_homeport_without_a_form_brings_the_subscription_back_with_its_own_settings()
    {
        var resource = await _bed.SubscribeAsync();
        var before = (await _bed.SubscriptionAsync(resource)).Configuration;
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        // HomePort's restore is a POST without a body: the order carries no settings.
        var restore = _bed.Waldur.PlaceOrder("Restore", _bed.Offering, resource, new System.Text.Json.Nodes.JsonObject());
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(restore)).Outcome);

        Assert.Equal("done", _bed.Waldur.OrderState(restore));
        var subscription = await _bed.SubscriptionAsync(resource);
        Assert.Equal(SubscriptionState.Active, subscription.State);
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(System.Text.Json.Nodes.JsonNode.Parse(before), System.Text.Json.Nodes.JsonNode.Parse(subscription.Configuration)));
    }

    [Fact]
    public async Task Secrets_are_stored_encrypted_with_keys_in_the_database_and_never_logged()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var workspace = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        var key = Assert.Single(_bed.Langflow.ApiKeys).Secret;
        var password = _bed.Credentials.Unprotect(workspace.LangflowPasswordCipher!);

        Assert.True(password.Length >= 43, "a 32-byte random password");
        Assert.NotEqual(key, workspace.LangflowApiKeyCipher);
        Assert.True(await _bed.QueryAsync(db => db.DataProtectionKeys.AnyAsync()), "the key ring lives in the database");
        var everything = string.Join('\n', _bed.Logs.Lines);
        Assert.DoesNotContain(key, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(password, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(LangflowFake.SuperuserPassword, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(RagflowFake.ApiKey, everything, StringComparison.Ordinal);
        AssertNoUpstreamSecretsOrIds(_bed.Waldur.Resource(resource).ToJsonString(), key, Guid.Parse(workspace.LangflowUserId!),
            Guid.Parse(subscription.LangflowProjectId!), Guid.Parse(subscription.LangflowFlowId!), subscription.RagflowDatasetId!);
    }

    internal static string? PromptValue(JsonObject flow, string variable) =>
        flow["data"]!["nodes"]!.AsArray().Single(n => n!["id"]!.GetValue<string>() == FlowTemplates.PromptComponentId)!
            ["data"]!["node"]!["template"]![variable]!["value"]!.GetValue<string>();

    /// <summary>What Waldur shows buyers never names upstream ids or secrets.</summary>
    internal static void AssertNoUpstreamSecretsOrIds(string text, string key, Guid user, Guid project, Guid flow, string dataset)
    {
        Assert.DoesNotContain(key, text, StringComparison.Ordinal);
        foreach (var id in new[] { user.ToString(), user.ToString("N"), project.ToString(), project.ToString("N"), flow.ToString(), flow.ToString("N"), dataset })
        {
            Assert.DoesNotContain(id, text, StringComparison.OrdinalIgnoreCase);
        }
    }
}
