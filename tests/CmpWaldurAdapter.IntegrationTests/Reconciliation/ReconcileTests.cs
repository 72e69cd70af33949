using System.Globalization;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Reconciliation;

/// <summary>
/// <c>cmp-adapter reconcile</c> against WireMock Waldur, Langflow and RAGFlow: one test per drift class, dry runs
/// change nothing, and <c>--prune</c> removes only orphans. Every request the adapter sends is checked against
/// the pinned specs when the bed is disposed.
/// </summary>
public sealed class ReconcileTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<(int Exit, JsonObject Report, string Error)> ReconcileAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var context = new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(_bed.Settings);
            builder.Services.AddSingleton<ILogEventSink>(_bed.Logs);
        });
        var exit = await AdapterCli.RunAsync(["reconcile", .. args, "--output", "json"], context);
        return (exit, exit == ExitCodes.Error ? [] : JsonNode.Parse(output.ToString())!.AsObject(), error.ToString());
    }

    private static List<JsonObject> Drifts(JsonObject report, string kind) =>
        report["drifts"]!.AsArray().Select(d => d!.AsObject()).Where(d => d["kind"]!.GetValue<string>() == kind).ToList();

    private static string Outcome(JsonObject drift) => drift["outcome"]!.GetValue<string>();

    private async Task<LangflowCredential> TenantKeyAsync(Subscription subscription)
    {
        var workspace = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        return LangflowCredential.FromApiKey(_bed.Credentials.Unprotect(workspace.LangflowApiKeyCipher!));
    }

    [Fact]
    public async Task A_consistent_installation_is_clean_and_exits_0()
    {
        await _bed.SubscribeAsync();

        var (exit, report, _) = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, exit);
        Assert.True(report["clean"]!.GetValue<bool>());
        Assert.Empty(report["drifts"]!.AsArray());
    }

    [Fact]
    public async Task A_stuck_order_is_fed_to_the_inbox_again_and_a_dry_run_only_reports_it()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        _bed.Waldur.Age(order, TimeSpan.FromHours(1));
        var fresh = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());

        var dry = await ReconcileAsync("--dry-run");

        Assert.Equal(ExitCodes.Unfinished, dry.Exit);
        var found = Assert.Single(Drifts(dry.Report, "StuckOrder"));
        Assert.Equal((order.ToString(), "Found"), (found["subject"]!.GetValue<string>(), Outcome(found)));
        Assert.Equal(0, await _bed.QueryAsync(db => db.OrderInbox.CountAsync()));

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, run.Exit);
        Assert.Equal("Fixed", Outcome(Assert.Single(Drifts(run.Report, "StuckOrder"))));
        var entry = await _bed.QueryAsync(db => db.OrderInbox.AsNoTracking().SingleAsync());
        Assert.Equal((order, "reconcile"), (entry.OrderUuid, entry.Source));
        Assert.NotEqual(fresh, entry.OrderUuid);
        Assert.Contains(order, await _bed.Services.GetRequiredService<OrderInbox>().DueAsync(10, [], CancellationToken.None));
    }

    [Fact]
    public async Task A_missing_flow_and_dataset_are_provisioned_again_and_a_dry_run_only_reports_them()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var langflow = _bed.Services.GetRequiredService<ILangflowApi>();
        await langflow.DeleteFlowAsync(Guid.Parse(subscription.LangflowFlowId!), await TenantKeyAsync(subscription), CancellationToken.None);
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [subscription.RagflowDatasetId!] }, CancellationToken.None);

        var dry = await ReconcileAsync("--dry-run");

        Assert.Equal(ExitCodes.Unfinished, dry.Exit);
        var found = Assert.Single(Drifts(dry.Report, "MissingTenant"));
        Assert.Equal("Found", Outcome(found));
        Assert.Contains("Langflow flow", found["detail"]!.GetValue<string>());
        Assert.Contains("RAGFlow dataset", found["detail"]!.GetValue<string>());
        Assert.DoesNotContain("Langflow project", found["detail"]!.GetValue<string>());
        Assert.Empty(_bed.Langflow.Flows);
        Assert.Empty(_bed.Ragflow.Datasets);

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, run.Exit);
        Assert.Equal("Fixed", Outcome(Assert.Single(Drifts(run.Report, "MissingTenant"))));
        var repaired = await _bed.SubscriptionAsync(resource);
        var flow = Assert.Single(_bed.Langflow.Flows);
        Assert.Equal(($"{TenantTestBed.OfferingName} cmp-{resource:N}", flow.Id.ToString()), (flow.Name, repaired.LangflowFlowId));
        Assert.Equal(subscription.LangflowProjectId, repaired.LangflowProjectId);
        var dataset = Assert.Single(_bed.Ragflow.Datasets);
        Assert.Equal(($"cmp-{resource:N}", dataset["id"]!.GetValue<string>()), (dataset["name"]!.GetValue<string>(), repaired.RagflowDatasetId));

        var again = await ReconcileAsync();
        Assert.Equal(ExitCodes.Success, again.Exit);
        Assert.Empty(again.Report["drifts"]!.AsArray());
    }

    [Fact]
    public async Task A_dataset_lost_in_ragflow_is_built_again_empty_its_documents_forgotten_a_parse_in_flight_given_back_and_charges_kept()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        await UploadAsync(subscription.Id, "done.txt");
        _bed.Ragflow.FinishParsing(subscription.RagflowDatasetId!);
        await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None);
        await UploadAsync(subscription.Id, "parsing.txt");
        // Deleted in RAGFlow behind the adapter's back, with both documents and the parse in flight.
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [subscription.RagflowDatasetId!] }, CancellationToken.None);

        var run = await ReconcileAsync();

        Assert.Equal("Fixed", Outcome(Assert.Single(Drifts(run.Report, "MissingTenant"))));
        var rebuilt = (await _bed.SubscriptionAsync(resource)).RagflowDatasetId!;
        Assert.NotEqual(subscription.RagflowDatasetId, rebuilt);
        Assert.Empty(_bed.Ragflow.Documents(rebuilt));
        Assert.Empty(await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscription.Id).ToListAsync()));
        // The done parse stays charged; the one in flight is not, and its hold is given back now, not when it would expire.
        var charge = Assert.Single(await _bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.SubscriptionId == subscription.Id && e.Kind == LedgerEntryKind.Charge).ToListAsync()));
        Assert.Equal(5, charge.Credits);
        var balance = await ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((95L, 0L), (balance.Balance, balance.Reserved));
    }

    private async Task UploadAsync(Guid subscriptionId, string name)
    {
        var knowledge = _bed.Services.GetRequiredService<KnowledgeBase>();
        var tenant = await knowledge.TenantAsync(subscriptionId, forWrite: true, CancellationToken.None);
        await using var holds = await knowledge.EnsureRoomAsync(tenant, 1, 0, CancellationToken.None);
        var file = KnowledgeFile.FromBytes(name, "text/plain", System.Text.Encoding.UTF8.GetBytes($"The text of {name}."));
        Assert.Single(await knowledge.AddAsync(tenant, [(file, DocumentOrigin.Upload)], holds, CancellationToken.None));
    }

    [Fact]
    public async Task A_subscription_terminated_while_reconcile_runs_is_not_built_again()
    {
        var first = await _bed.SubscribeAsync();
        var second = await _bed.SubscribeAsync();
        var (repairFirst, leaveSecond) = (await _bed.SubscriptionAsync(first), await _bed.SubscriptionAsync(second));
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [repairFirst.RagflowDatasetId!, leaveSecond.RagflowDatasetId!] }, CancellationToken.None);
        var terminated = 0;
        _bed.Ragflow.Observe = (message, _) =>
        {
            // While the first is repaired, a Terminate order of the second (found missing minutes ago) begins.
            if (message.Method == "POST" && message.Path == "/api/v1/datasets" && Interlocked.Exchange(ref terminated, 1) == 0)
            {
                _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == leaveSecond.Id)
                    .ExecuteUpdateAsync(set => set.SetProperty(s => s.State, CmpWaldurAdapter.Core.Subscriptions.SubscriptionState.Terminating))).GetAwaiter().GetResult();
            }
        };

        var run = await ReconcileAsync();

        Assert.Equal(1, terminated);
        var drifts = Drifts(run.Report, "MissingTenant").ToDictionary(d => d!["subject"]!.GetValue<string>());
        Assert.Equal("Fixed", Outcome(drifts[repairFirst.Id.ToString()]));
        Assert.Equal("Found", Outcome(drifts[leaveSecond.Id.ToString()]));
        Assert.Contains("no longer active", drifts[leaveSecond.Id.ToString()]!["detail"]!.GetValue<string>());
        Assert.Equal([$"cmp-{first:N}"], _bed.Ragflow.Datasets.Select(d => d["name"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("langflow", "GET", "/api/v1/api_key/")] // the project step's key check: a refused key makes the user again
    [InlineData("ragflow", "POST", "/api/v1/datasets")]
    public async Task A_terminate_order_of_the_resource_being_rebuilt_leaves_no_dataset_or_langflow_user_behind(string upstream, string method, string path)
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [subscription.RagflowDatasetId!] }, CancellationToken.None);
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        var hold = (upstream == "langflow" ? _bed.Langflow.Upstream : _bed.Ragflow.Upstream).Hold(method, path);

        // The rebuild waits on its upstream call while the buyer's Terminate order is processed.
        var reconcile = ReconcileAsync();
        for (var waited = 0; hold.Arrived == 0 && !reconcile.IsCompleted && waited < 300; waited++)
        {
            await Task.Delay(100);
        }

        Assert.Equal(1, hold.Arrived);
        await _bed.Processor.ProcessAsync(terminate, CancellationToken.None); // done now, or busy until the rebuild lets go
        hold.Release();
        await reconcile;
        await _bed.ProcessUntilSettledAsync(terminate);

        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Equal(Core.Subscriptions.SubscriptionState.Terminated, (await _bed.SubscriptionAsync(resource)).State);
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.ApiKeys);
        Assert.DoesNotContain(_bed.Langflow.Projects, p => p.Name.StartsWith("cmp-", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_rebuild_whose_lease_was_taken_over_mid_step_saves_nothing_of_the_step()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [subscription.RagflowDatasetId!] }, CancellationToken.None);
        var lease = CmpWaldurAdapter.Reconciliation.Reconciler.RebuildWork.RecordId(resource);
        var takenOver = 0;
        _bed.Ragflow.Observe = (message, _) =>
        {
            // While the rebuild makes the dataset, its lease ran out as far as another replica can tell, and that one took it.
            if (message.Method == "POST" && message.Path == "/api/v1/datasets" && Interlocked.Exchange(ref takenOver, 1) == 0)
            {
                _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == lease).ExecuteUpdateAsync(set => set
                    .SetProperty(o => o.LeaseOwner, "another-replica")
                    .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5)))).GetAwaiter().GetResult();
            }
        };

        var run = await ReconcileAsync();

        Assert.Equal(1, takenOver);
        Assert.Equal("Found", Outcome(Assert.Single(Drifts(run.Report, "MissingTenant"))));
        // The dataset it made is not recorded by it: the new holder's rebuild looks before it creates and records its own.
        var after = await _bed.SubscriptionAsync(resource);
        Assert.Equal(subscription.RagflowDatasetId, after.RagflowDatasetId);
        Assert.Equal("another-replica", await _bed.QueryAsync(db => db.Orders.Where(o => o.OrderUuid == lease).Select(o => o.LeaseOwner).SingleAsync()));
    }

    [Fact]
    public async Task A_resource_whose_order_holds_the_lease_is_skipped_and_rebuilt_by_a_later_run_and_neither_run_leaves_a_record_among_the_orders()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [subscription.RagflowDatasetId!] }, CancellationToken.None);
        // Another replica is working on an order of the resource.
        var leases = _bed.Services.GetRequiredService<OrderLeases>();
        var order = Guid.NewGuid();
        await leases.EnsureRecordAsync(order, Core.Orders.OrderType.Update, resource, _bed.Offering, CancellationToken.None);
        Assert.True(await leases.TryAcquireAsync(order, CancellationToken.None));
        var orders = await OrderRecordsAsync();

        var busy = await ReconcileAsync();

        Assert.Equal(ExitCodes.Unfinished, busy.Exit);
        var skipped = Assert.Single(Drifts(busy.Report, "MissingTenant"));
        Assert.Equal("Found", Outcome(skipped));
        Assert.Contains("an order of the resource is being worked on", skipped["detail"]!.GetValue<string>());
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Equal(orders, await OrderRecordsAsync());

        await leases.ReleaseAsync(order);
        var later = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, later.Exit);
        Assert.Equal("Fixed", Outcome(Assert.Single(Drifts(later.Report, "MissingTenant"))));
        Assert.Equal([$"cmp-{resource:N}"], _bed.Ragflow.Datasets.Select(d => d["name"]!.GetValue<string>()));
        // The rebuild's lease record is no order: the orders table holds the Create and the order at work, as before.
        Assert.Equal(orders, await OrderRecordsAsync());
    }

    private Task<List<Guid>> OrderRecordsAsync() => _bed.QueryAsync(db => db.Orders.Select(o => o.OrderUuid).OrderBy(o => o).ToListAsync());

    [Fact]
    public async Task A_dataset_the_subscriptions_row_lost_is_adopted_again_with_its_documents_uncharged()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var document = _bed.Ragflow.AddDocument(subscription.RagflowDatasetId!, "handbook.md", "We open at nine.");
        // The row comes back from a backup taken before the dataset was recorded.
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.RagflowDatasetId, (string?)null)));

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, run.Exit);
        Assert.Contains("RAGFlow dataset", Assert.Single(Drifts(run.Report, "MissingTenant"))["detail"]!.GetValue<string>());
        Assert.Equal(subscription.RagflowDatasetId, (await _bed.SubscriptionAsync(resource)).RagflowDatasetId);
        Assert.Single(_bed.Ragflow.Datasets);
        var row = Assert.Single(await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscription.Id).ToListAsync()));
        Assert.Equal((document, "handbook.md", ParseStates.Done, 0L, true), (row.RagflowDocumentId, row.Name, row.Status, row.CreditsCharged, row.ChargedAt is not null));

        var again = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, again.Exit);
        Assert.Empty(again.Report["drifts"]!.AsArray());
        Assert.Single(await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscription.Id).ToListAsync()));
    }

    [Fact]
    public async Task A_tenant_whose_langflow_user_was_deleted_gets_a_new_user_key_project_and_flow()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var workspace = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        var superuser = _bed.Services.GetRequiredService<LangflowSuperuser>();
        await superuser.CallAsync(su => _bed.Services.GetRequiredService<ILangflowApi>().DeleteUserAsync(Guid.Parse(workspace.LangflowUserId!), su, CancellationToken.None), CancellationToken.None);

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, run.Exit);
        Assert.Contains("Langflow user", Assert.Single(Drifts(run.Report, "MissingTenant"))["detail"]!.GetValue<string>());
        var user = Assert.Single(_bed.Langflow.Users);
        Assert.Equal($"cmp-{subscription.WorkspaceId:N}", user.Username);
        var repaired = await _bed.SubscriptionAsync(resource);
        Assert.Equal(user.Id, Assert.Single(_bed.Langflow.Flows, f => f.Id.ToString() == repaired.LangflowFlowId).UserId);
    }

    [Fact]
    public async Task A_tenant_whose_key_langflow_refuses_gets_a_new_key_and_keeps_its_user_project_and_flow()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var before = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        // An administrator deleted the key in Langflow's settings.
        _bed.Langflow.DeleteApiKeys(_ => true);

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, run.Exit);
        var drift = Assert.Single(Drifts(run.Report, "MissingTenant"));
        Assert.Equal("Fixed", Outcome(drift));
        Assert.Contains("Langflow API key", drift["detail"]!.GetValue<string>());
        var after = await _bed.WorkspaceAsync(subscription.WorkspaceId);
        Assert.Equal(before.LangflowUserId, after.LangflowUserId);
        Assert.NotEqual(before.LangflowApiKeyId, after.LangflowApiKeyId);
        Assert.Equal(after.LangflowApiKeyId, Assert.Single(_bed.Langflow.ApiKeys).Id.ToString());
        Assert.Equal(subscription.LangflowFlowId, (await _bed.SubscriptionAsync(resource)).LangflowFlowId);
    }

    [Fact]
    public async Task An_orphan_flow_is_listed_without_prune_and_removed_with_it_and_the_live_flow_stays()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        // An earlier subscription of the project, terminated, whose flow was left behind.
        var gone = Guid.NewGuid();
        await _bed.QueryAsync(db =>
        {
            db.Subscriptions.Add(new Subscription
            {
                Id = Guid.NewGuid(),
                ResourceUuid = gone,
                OfferingUuid = subscription.OfferingUuid,
                CustomerId = subscription.CustomerId,
                WorkspaceId = subscription.WorkspaceId,
                Name = "earlier agent",
                State = Core.Subscriptions.SubscriptionState.Terminated,
                CreatedAt = subscription.CreatedAt,
                UpdatedAt = subscription.UpdatedAt,
            });
            return db.SaveChangesAsync();
        });
        var orphan = await _bed.Services.GetRequiredService<ILangflowApi>().CreateFlowAsync(
            new FlowCreate { Name = $"{TenantTestBed.OfferingName} cmp-{gone:N}", Folder_id = Guid.Parse(subscription.LangflowProjectId!), Access_type = AccessTypeEnum.PRIVATE },
            await TenantKeyAsync(subscription), CancellationToken.None);
        var foreign = await _bed.Services.GetRequiredService<ILangflowApi>().CreateFlowAsync(
            new FlowCreate { Name = "A flow someone made by hand", Folder_id = Guid.Parse(subscription.LangflowProjectId!), Access_type = AccessTypeEnum.PRIVATE },
            await TenantKeyAsync(subscription), CancellationToken.None);

        var listed = await ReconcileAsync();
        var dryPrune = await ReconcileAsync("--prune", "--dry-run");

        Assert.Equal(ExitCodes.Unfinished, listed.Exit);
        var found = Assert.Single(Drifts(listed.Report, "OrphanFlow"));
        Assert.Equal((orphan.Name, "Found"), (found["subject"]!.GetValue<string>(), Outcome(found)));
        Assert.Equal(ExitCodes.Unfinished, dryPrune.Exit);
        Assert.Equal(3, _bed.Langflow.Flows.Count);

        var pruned = await ReconcileAsync("--prune");

        Assert.Equal(ExitCodes.Success, pruned.Exit);
        Assert.Equal("Removed", Outcome(Assert.Single(Drifts(pruned.Report, "OrphanFlow"))));
        Assert.Equal(
            new[] { subscription.LangflowFlowId!, foreign.Id.ToString() }.Order(),
            _bed.Langflow.Flows.Select(f => f.Id.ToString()).Order());
    }

    [Fact]
    public async Task An_orphan_dataset_is_removed_only_with_prune_and_no_other_dataset_is_touched()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        // A dataset left behind under a resource the adapter records (a twin of its own one, say).
        var orphan = _bed.Ragflow.AddDataset($"cmp-{resource:N}");
        var foreign = _bed.Ragflow.AddDataset("someone-elses-dataset");

        var listed = await ReconcileAsync();
        var dryPrune = await ReconcileAsync("--dry-run", "--prune");

        Assert.Equal(ExitCodes.Unfinished, listed.Exit);
        Assert.Equal("Found", Outcome(Assert.Single(Drifts(listed.Report, "OrphanDataset"))));
        Assert.Equal(ExitCodes.Unfinished, dryPrune.Exit);
        Assert.Equal(3, _bed.Ragflow.Datasets.Count);

        var pruned = await ReconcileAsync("--prune");

        Assert.Equal(ExitCodes.Success, pruned.Exit);
        var removed = Assert.Single(Drifts(pruned.Report, "OrphanDataset"));
        Assert.Equal("Removed", Outcome(removed));
        Assert.Contains(orphan, removed["detail"]!.GetValue<string>());
        Assert.Equal(
            new[] { subscription.RagflowDatasetId!, foreign }.Order(),
            _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()).Order());
        Assert.Equal(0, _bed.Ragflow.UnscopedDeletes);
    }

    [Fact]
    public async Task Tenants_named_for_projects_and_resources_the_database_does_not_record_are_listed_but_never_pruned()
    {
        var subscription = await _bed.SubscriptionAsync(await _bed.SubscribeAsync());
        // A subscription of a known project that a restored backup forgot: its flow lives in the project's user.
        var forgotten = await _bed.Services.GetRequiredService<ILangflowApi>().CreateFlowAsync(
            new FlowCreate { Name = $"{TenantTestBed.OfferingName} cmp-{Guid.NewGuid():N}", Folder_id = Guid.Parse(subscription.LangflowProjectId!), Access_type = AccessTypeEnum.PRIVATE },
            await TenantKeyAsync(subscription), CancellationToken.None);
        // Another deployment on the same Langflow and RAGFlow accounts (or subscriptions a restored backup forgot).
        var theirProject = Guid.NewGuid();
        var theirDataset = _bed.Ragflow.AddDataset($"cmp-{Guid.NewGuid():N}");
        await CreateLangflowUserAsync($"cmp-{theirProject:N}");

        var pruned = await ReconcileAsync("--prune");

        Assert.Equal(ExitCodes.Unfinished, pruned.Exit);
        var dataset = Assert.Single(Drifts(pruned.Report, "OrphanDataset"));
        var user = Assert.Single(Drifts(pruned.Report, "OrphanLangflowUser"));
        Assert.All(new[] { dataset, user }, d => Assert.Equal("Found", Outcome(d)));
        Assert.Contains("never pruned", dataset["detail"]!.GetValue<string>());
        Assert.Contains(_bed.Ragflow.Datasets, d => d["id"]!.GetValue<string>() == theirDataset);
        Assert.Contains(_bed.Langflow.Users, u => u.Username == $"cmp-{theirProject:N}");
        Assert.Equal("Found", Outcome(Assert.Single(Drifts(pruned.Report, "OrphanFlow"))));
        Assert.Contains(_bed.Langflow.Flows, f => f.Id == forgotten.Id);
    }

    [Fact]
    public async Task A_terminated_subscriptions_leftover_user_is_an_orphan_and_pruned()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        // The adapter's records say terminated, but the upstream objects were left behind.
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.State, Core.Subscriptions.SubscriptionState.Terminated)));

        var pruned = await ReconcileAsync("--prune");

        Assert.Equal(ExitCodes.Success, pruned.Exit);
        Assert.Equal("Removed", Outcome(Assert.Single(Drifts(pruned.Report, "OrphanLangflowUser"))));
        Assert.Equal("Removed", Outcome(Assert.Single(Drifts(pruned.Report, "OrphanDataset"))));
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Null((await _bed.WorkspaceAsync(subscription.WorkspaceId)).LangflowApiKeyCipher);
        // Langflow's user delete leaves the user's flows (the agent's prompt, its chats) behind: they went first.
        Assert.Empty(_bed.Langflow.Flows);
    }

    [Fact]
    public async Task An_orphan_user_the_adapter_holds_no_credentials_for_is_pruned_with_its_flows()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var user = Assert.Single(_bed.Langflow.Users);
        // Terminated, with the upstream objects left behind and the project's Langflow records lost.
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.State, Core.Subscriptions.SubscriptionState.Terminated)));
        await _bed.QueryAsync(db => db.Workspaces.Where(w => w.Id == subscription.WorkspaceId).ExecuteUpdateAsync(set => set
            .SetProperty(w => w.LangflowUserId, (string?)null)
            .SetProperty(w => w.LangflowUsername, (string?)null)
            .SetProperty(w => w.LangflowPasswordCipher, (string?)null)
            .SetProperty(w => w.LangflowApiKeyId, (string?)null)
            .SetProperty(w => w.LangflowApiKeyCipher, (string?)null)));

        var pruned = await ReconcileAsync("--prune");

        Assert.Equal(ExitCodes.Success, pruned.Exit);
        Assert.Equal("Removed", Outcome(Assert.Single(Drifts(pruned.Report, "OrphanLangflowUser"))));
        Assert.Empty(_bed.Langflow.Users);
        Assert.DoesNotContain(_bed.Langflow.Flows, f => f.UserId == user.Id);
    }

    [Fact]
    public async Task An_orphan_user_whose_flows_cannot_be_deleted_is_kept_for_the_next_run()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id)
            .ExecuteUpdateAsync(set => set.SetProperty(s => s.State, Core.Subscriptions.SubscriptionState.Terminated)));
        _bed.Langflow.Fail("DELETE", "/api/v1/flows/[^/]+", 400);

        var failed = await ReconcileAsync("--prune");

        Assert.Equal("Failed", Outcome(Assert.Single(Drifts(failed.Report, "OrphanLangflowUser"))));
        Assert.Single(_bed.Langflow.Users);
        Assert.Single(_bed.Langflow.Flows);
        Assert.NotNull((await _bed.WorkspaceAsync(subscription.WorkspaceId)).LangflowApiKeyCipher);

        var pruned = await ReconcileAsync("--prune");

        Assert.Equal("Removed", Outcome(Assert.Single(Drifts(pruned.Report, "OrphanLangflowUser"))));
        Assert.Empty(_bed.Langflow.Users);
        Assert.Empty(_bed.Langflow.Flows);
    }

    /// <summary>A Langflow user made by someone else with the superuser, as another deployment's adapter makes its tenants.</summary>
    private Task CreateLangflowUserAsync(string username) =>
        _bed.Services.GetRequiredService<LangflowSuperuser>().CallAsync(
            su => _bed.Services.GetRequiredService<ILangflowApi>().CreateUserAsync(new UserCreate { Username = username, Password = "someone-elses-password-0123" }, su, CancellationToken.None),
            CancellationToken.None);

    [Fact]
    public async Task Drifted_usage_is_reported_again_and_a_dry_run_sends_nothing()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        for (var i = 0; i < 3; i++)
        {
            await ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, $"m{i}");
        }

        var month = DateOnly.FromDateTime(DateTime.UtcNow);
        _bed.Waldur.SeedUsage(resource, "chat_credits", new DateOnly(month.Year, month.Month, 1), "4.00");
        const string setUsage = "/api/marketplace-component-usages/set_usage/";

        var dry = await ReconcileAsync("--dry-run");

        Assert.Equal(ExitCodes.Unfinished, dry.Exit);
        var found = Assert.Single(Drifts(dry.Report, "UsageDrift"));
        Assert.Equal("Found", Outcome(found));
        Assert.Contains("chat_credits", found["subject"]!.GetValue<string>());
        Assert.Equal(0, _bed.Waldur.Count("POST", setUsage));

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, run.Exit);
        Assert.Equal("Fixed", Outcome(Assert.Single(Drifts(run.Report, "UsageDrift"))));
        Assert.Equal(1, _bed.Waldur.Count("POST", setUsage));
        Assert.Contains(_bed.Waldur.Usages, u => u["resource_uuid"]!.GetValue<string>() == resource.ToString()
            && u["type"]!.GetValue<string>() == "chat_credits"
            && decimal.Parse(u["usage"]!.GetValue<string>(), CultureInfo.InvariantCulture) == 6m);

        var again = await ReconcileAsync();
        Assert.Equal(ExitCodes.Success, again.Exit);
        Assert.Empty(again.Report["drifts"]!.AsArray());
    }

    [Fact]
    public async Task An_unknown_offering_and_an_unreachable_upstream_exit_2()
    {
        var unknown = await ReconcileAsync("--offering", "no-such-offering");
        Assert.Equal(ExitCodes.Error, unknown.Exit);
        Assert.Contains("not a served offering", unknown.Error);

        _bed.Ragflow.Break("GET", "/api/v1/datasets", 503);
        var down = await ReconcileAsync();
        Assert.Equal(ExitCodes.Error, down.Exit);
        Assert.Contains("reconcile:", down.Error);
    }
}
