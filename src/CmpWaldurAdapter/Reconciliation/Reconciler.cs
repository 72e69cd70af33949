using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Usage;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Refit;

namespace CmpWaldurAdapter.Reconciliation;

/// <summary>
/// Compares Waldur's orders and usage, the adapter's subscriptions, and the Langflow and RAGFlow objects the
/// adapter names <c>cmp-*</c>, and repairs what it safely can: re-feeds stuck orders, re-provisions missing
/// tenants with the same idempotent steps orders use, re-reports drifted usage, names organizations recorded without
/// a name. Orphans are only listed unless pruning is asked for; only objects named <c>cmp-*</c> are ever considered,
/// and a dry run changes nothing.
/// </summary>
public sealed partial class Reconciler(
    IServiceProvider services,
    IDbContextFactory<AdapterDbContext> dbs,
    ServedOfferings served,
    OrderPoller poller,
    OrderInbox inbox,
    OrderLeases leases,
    UsageReporter usage,
    IWaldurApi waldur,
    TimeProvider clock,
    IOptionsMonitor<OrdersOptions> ordersOptions,
    ILogger<Reconciler> logger)
{
    private const int Steps = 6;
    private const int LangflowPageSize = 100;
    private const int RagflowPageSize = 100;

    public async Task<ReconcileReport> RunAsync(ReconcileRequest request, IProgress<ReconcileProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var drifts = new List<Drift>();
        var checkedAreas = new List<string>();
        var upstreams = Upstreams.From(services);

        progress?.Report(new ReconcileProgress(0, Steps, "orders"));
        drifts.AddRange(await StuckOrdersAsync(request, cancellationToken));
        checkedAreas.Add("Waldur orders");

        progress?.Report(new ReconcileProgress(1, Steps, "upstream inventory"));
        Inventory? inventory = null;
        if (upstreams is not null)
        {
            inventory = await InventoryAsync(upstreams, cancellationToken);
            checkedAreas.Add("Langflow users, projects and flows");
            checkedAreas.Add("RAGFlow datasets");
        }

        progress?.Report(new ReconcileProgress(2, Steps, "tenants"));
        if (upstreams is not null && inventory is not null)
        {
            drifts.AddRange(await MissingTenantsAsync(request, upstreams, inventory, cancellationToken));
        }

        progress?.Report(new ReconcileProgress(3, Steps, "orphans"));
        if (upstreams is not null && inventory is not null && request.Offering is null)
        {
            // Orphans belong to no subscription, hence to no offering: looked for only when reconciling everything.
            drifts.AddRange(await OrphansAsync(request, upstreams, inventory, cancellationToken));
        }

        progress?.Report(new ReconcileProgress(4, Steps, "usage"));
        drifts.AddRange(await UsageDriftAsync(request, cancellationToken));
        checkedAreas.Add("usage reported to Waldur");

        progress?.Report(new ReconcileProgress(5, Steps, "organization names"));
        drifts.AddRange(await NamelessOrganizationsAsync(request, cancellationToken));
        checkedAreas.Add("organization names");
        progress?.Report(new ReconcileProgress(Steps, Steps, "done"));

        var report = new ReconcileReport(drifts, checkedAreas, request.DryRun, request.Prune);
        logger.LogInformation("Reconciliation{DryRun}: {Drifts} drift(s) found, {Remaining} remain", request.DryRun ? " (dry run)" : string.Empty, drifts.Count, drifts.Count(d => d.Remains));
        return report;
    }

    // ---- Stuck orders ----------------------------------------------------------------------------------

    private async Task<List<Drift>> StuckOrdersAsync(ReconcileRequest request, CancellationToken cancellationToken)
    {
        var threshold = clock.GetUtcNow() - ordersOptions.CurrentValue.StuckAfter;
        var drifts = new List<Drift>();
        foreach (var order in await poller.ListActionableAsync(cancellationToken))
        {
            var lastChange = order.Modified ?? order.Created;
            if (order.Uuid is not { } uuid || lastChange >= threshold || (request.Offering is { } only && order.Offering_uuid != only))
            {
                continue;
            }

            var state = WaldurEnums.ToWire(order.State);
            var detail = $"{WaldurEnums.ToWire(order.Type)} order of '{order.Resource_name}' has been {state} since {lastChange:u}";
            if (request.DryRun)
            {
                drifts.Add(new Drift(DriftKind.StuckOrder, uuid.ToString(), detail, DriftOutcome.Found));
                continue;
            }

            await inbox.EnqueueAsync(uuid, state, "reconcile", refeed: true, cancellationToken);
            logger.LogWarning("Order {OrderUuid} has been {OrderState} since {Modified}; re-fed to the order inbox", uuid, state, lastChange);
            drifts.Add(new Drift(DriftKind.StuckOrder, uuid.ToString(), detail + "; fed to the order inbox again", DriftOutcome.Fixed));
        }

        return drifts;
    }

    // ---- Upstream inventory ----------------------------------------------------------------------------

    private sealed record TenantListing(List<FolderRead> Projects, List<FlowHeader> Flows);

    private sealed class Inventory
    {
        public required List<UserRead> Users { get; init; }

        public required List<Dataset> Datasets { get; init; }

        /// <summary>Per workspace: its projects and flows, or null when its stored key was refused.</summary>
        public Dictionary<Guid, TenantListing?> Tenants { get; } = [];
    }

    private async Task<Inventory> InventoryAsync(Upstreams upstreams, CancellationToken cancellationToken)
    {
        var users = new List<UserRead>();
        for (var skip = 0; ; skip += LangflowPageSize)
        {
            var page = await upstreams.Superuser.CallAsync(su => upstreams.Langflow.ListUsersAsync(skip, LangflowPageSize, su, cancellationToken), cancellationToken);
            users.AddRange(page?.Users ?? []);
            if (page is null || page.Users.Count < LangflowPageSize || skip + LangflowPageSize >= page.Total_count)
            {
                break;
            }
        }

        var datasets = new List<Dataset>();
        for (var page = 1; ; page++)
        {
            var batch = (await upstreams.Ragflow.ListDatasetsAsync(page, RagflowPageSize, cancellationToken))?.Data ?? [];
            datasets.AddRange(batch);
            if (batch.Count < RagflowPageSize)
            {
                break;
            }
        }

        var inventory = new Inventory { Users = users, Datasets = [.. datasets.DistinctBy(d => d.Id)] };
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var workspaces = await db.Workspaces.AsNoTracking().Where(w => w.LangflowApiKeyCipher != null).ToListAsync(cancellationToken);
        foreach (var workspace in workspaces)
        {
            inventory.Tenants[workspace.Id] = await ListTenantAsync(upstreams, workspace, cancellationToken);
        }

        return inventory;
    }

    private static async Task<TenantListing?> ListTenantAsync(Upstreams upstreams, Workspace workspace, CancellationToken cancellationToken)
    {
        try
        {
            var key = LangflowCredential.FromApiKey(upstreams.Credentials.Unprotect(workspace.LangflowApiKeyCipher!));
            var projects = await upstreams.Langflow.ListProjectsAsync(key, cancellationToken) ?? [];
            var flows = await upstreams.Langflow.ListFlowHeadersAsync(key, cancellationToken) ?? [];
            return new TenantListing(projects, flows);
        }
        catch (ApiException exception) when (exception.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            return null; // The user or its key is gone: the tenant check reports it.
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }

    // ---- Missing tenants -------------------------------------------------------------------------------

    private async Task<List<Drift>> MissingTenantsAsync(ReconcileRequest request, Upstreams upstreams, Inventory inventory, CancellationToken cancellationToken)
    {
        List<Subscription> active;
        Dictionary<Guid, Workspace> workspaces;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            active = await db.Subscriptions.AsNoTracking().Where(s => s.State == SubscriptionState.Active).ToListAsync(cancellationToken);
            var ids = active.Select(s => s.WorkspaceId).Distinct().ToList();
            workspaces = await db.Workspaces.AsNoTracking().Where(w => ids.Contains(w.Id)).ToDictionaryAsync(w => w.Id, cancellationToken);
        }

        var userIds = inventory.Users.Select(u => u.Id?.ToString()).OfType<string>().ToHashSet(StringComparer.OrdinalIgnoreCase);
        var datasetIds = inventory.Datasets.Select(d => d.Id).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var drifts = new List<Drift>();
        foreach (var subscription in active.Where(s => served.Serves(s.OfferingUuid) && (request.Offering is null || s.OfferingUuid == request.Offering)).OrderBy(s => s.CreatedAt))
        {
            workspaces.TryGetValue(subscription.WorkspaceId, out var workspace);
            var missing = new List<string>();
            if (workspace?.LangflowUserId is null || !userIds.Contains(workspace.LangflowUserId))
            {
                missing.Add("Langflow user");
            }

            TenantListing? listing = null;
            if (workspace?.LangflowApiKeyCipher is null || !inventory.Tenants.TryGetValue(workspace.Id, out listing) || listing is null)
            {
                if (missing.Count == 0)
                {
                    missing.Add("Langflow API key");
                }
            }
            else
            {
                if (subscription.LangflowProjectId is null || !listing.Projects.Any(p => p.Id.ToString() == subscription.LangflowProjectId))
                {
                    missing.Add("Langflow project");
                }

                if (subscription.LangflowFlowId is null || !listing.Flows.Any(f => f.Id.ToString() == subscription.LangflowFlowId))
                {
                    missing.Add("Langflow flow");
                }
            }

            if (subscription.RagflowDatasetId is null || !datasetIds.Contains(subscription.RagflowDatasetId))
            {
                missing.Add("RAGFlow dataset");
            }

            if (missing.Count == 0)
            {
                continue;
            }

            var detail = $"subscription {subscription.Id} (resource {subscription.ResourceUuid}) is missing: {string.Join(", ", missing)}";
            if (request.DryRun)
            {
                drifts.Add(new Drift(DriftKind.MissingTenant, subscription.Id.ToString(), detail, DriftOutcome.Found));
                continue;
            }

            try
            {
                drifts.Add(await ReprovisionAsync(upstreams, subscription, cancellationToken) switch
                {
                    Rebuild.Done => new Drift(DriftKind.MissingTenant, subscription.Id.ToString(), detail + "; provisioned again", DriftOutcome.Fixed),
                    Rebuild.Busy => new Drift(DriftKind.MissingTenant, subscription.Id.ToString(), detail + "; not provisioned again: an order of the resource is being worked on, the next run tries again", DriftOutcome.Found),
                    _ => new Drift(DriftKind.MissingTenant, subscription.Id.ToString(), detail + "; not provisioned again: the subscription is no longer active", DriftOutcome.Found),
                });
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested && exception is not OperationCanceledException)
            {
                logger.LogWarning(exception, "Re-provisioning subscription {SubscriptionId} failed", subscription.Id);
                drifts.Add(new Drift(DriftKind.MissingTenant, subscription.Id.ToString(), detail, DriftOutcome.Failed, Describe(exception)));
            }
        }

        return drifts;
    }

    private enum Rebuild
    {
        Done,
        NoLongerActive,
        Busy,
    }

    /// <summary>
    /// Runs the Create steps again: each looks before it creates, so only what is missing is made. Not done while an
    /// order of the resource is being worked on (Busy), nor once the subscription stopped being active.
    /// </summary>
    private async Task<Rebuild> ReprovisionAsync(Upstreams upstreams, Subscription found, CancellationToken cancellationToken)
    {
        // Under the resource's order lease, with the state read after taking it: a Terminate running beside the rebuild
        // would otherwise see its deletions undone, leaving a tenant, with a live stored key, that nothing ever removes.
        var run = await leases.RunOnResourceAsync(RebuildWork, found.ResourceUuid, found.OfferingUuid,
            held => ReprovisionLeasedAsync(upstreams, found.Id, held), cancellationToken);
        if (run.Busy)
        {
            logger.LogInformation("Resource {ResourceUuid} is being worked on by an order or another process; its tenant is rebuilt by a later run", found.ResourceUuid);
            return Rebuild.Busy;
        }

        return run.Result;
    }

    /// <summary>
    /// The rebuild of a missing tenant, leased like the Create order whose steps it runs again. Its record carries only the
    /// lease (the steps' progress is not kept: each looks before it creates), so it is removed once released.
    /// </summary>
    internal static readonly ResourceWork RebuildWork = new("reconcile-rebuild", OrderType.Create, KeepsRecord: false);

    private async Task<Rebuild> ReprovisionLeasedAsync(Upstreams upstreams, Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.SingleAsync(s => s.Id == subscriptionId, cancellationToken);
        if (subscription.State != SubscriptionState.Active)
        {
            return Rebuild.NoLongerActive;
        }

        // A stored key that no longer opens the tenant is replaced by the project step itself (LangflowTenant).
        var workspace = await db.Workspaces.SingleAsync(w => w.Id == subscription.WorkspaceId, cancellationToken);

        var context = new ProvisioningContext
        {
            Db = db,
            Order = new OrderDetails { Marketplace_resource_uuid = subscription.ResourceUuid, Offering_uuid = subscription.OfferingUuid },
            Subscription = subscription,
            Workspace = workspace,
            Configuration = JsonNode.Parse(subscription.Configuration) as JsonObject ?? [],
            Notes = [],
        };
        var lease = RebuildWork.RecordId(subscription.ResourceUuid);
        foreach (var step in upstreams.Provisioner.StepsFor(OrderType.Create))
        {
            await step.ExecuteAsync(context, cancellationToken);
            subscription.UpdatedAt = clock.GetUtcNow();
            // Fenced by the rebuild's lease, as an order's saves are by its own: a rebuild whose lease another process took over
            // (its renewals lost for a whole lease) saves nothing of its step over the new holder's, and stops.
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            await leases.FenceAsync(db, lease, cancellationToken);
            await db.SaveChangesAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        logger.LogWarning("Re-provisioned the missing tenant of subscription {SubscriptionId}", subscriptionId);
        return Rebuild.Done;
    }

    // ---- Orphans ---------------------------------------------------------------------------------------

    private async Task<List<Drift>> OrphansAsync(ReconcileRequest request, Upstreams upstreams, Inventory inventory, CancellationToken cancellationToken)
    {
        List<Subscription> live;
        List<Workspace> workspaces;
        HashSet<string> knownResources;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            live = await db.Subscriptions.AsNoTracking().Where(s => s.State != SubscriptionState.Terminated).ToListAsync(cancellationToken);
            workspaces = await db.Workspaces.AsNoTracking().ToListAsync(cancellationToken);
            knownResources = (await db.Subscriptions.AsNoTracking().Select(s => s.ResourceUuid).ToListAsync(cancellationToken))
                .Select(r => r.ToString("N")).ToHashSet(StringComparer.OrdinalIgnoreCase);
        }

        // Names alone do not say whose an object is: another deployment sharing the upstream account names its tenants
        // the same way, and a database restored from a backup has forgotten the newest subscriptions. Only objects named
        // for a project or resource this database records are ever pruned.
        var knownProjects = workspaces.Select(w => w.Id.ToString("N")).ToHashSet(StringComparer.OrdinalIgnoreCase);

        var liveByResource = live.ToDictionary(s => s.ResourceUuid.ToString("N"), StringComparer.OrdinalIgnoreCase);
        var liveProjects = live.Select(s => s.WorkspaceId.ToString("N")).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var drifts = new List<Drift>();

        // Users of Waldur projects that have no live subscription.
        foreach (var user in inventory.Users)
        {
            if (user.Id is not { } userId || UserName().Match(user.Username) is not { Success: true } match || liveProjects.Contains(match.Groups[1].Value))
            {
                continue;
            }

            var workspace = workspaces.FirstOrDefault(w => w.LangflowUserId == userId.ToString())
                ?? workspaces.FirstOrDefault(w => string.Equals(w.Id.ToString("N"), match.Groups[1].Value, StringComparison.OrdinalIgnoreCase));
            drifts.Add(await PruneAsync(request, DriftKind.OrphanLangflowUser, user.Username, $"Langflow user {userId} of a project with no live subscription", knownProjects.Contains(match.Groups[1].Value), async () =>
            {
                // Its flows and their chat messages first: the user's delete leaves them on the server, unreachable.
                await upstreams.Tenant.DeleteUserAsync(workspace, userId, user.Username, cancellationToken);
                await using var db = await dbs.CreateDbContextAsync(cancellationToken);
                await db.Workspaces.Where(w => w.LangflowUserId == userId.ToString()).ExecuteUpdateAsync(set => set
                    .SetProperty(w => w.LangflowUserId, (string?)null)
                    .SetProperty(w => w.LangflowUsername, (string?)null)
                    .SetProperty(w => w.LangflowPasswordCipher, (string?)null)
                    .SetProperty(w => w.LangflowApiKeyId, (string?)null)
                    .SetProperty(w => w.LangflowApiKeyCipher, (string?)null), cancellationToken);
            }));
        }

        // Projects and flows inside the tenants of live projects.
        foreach (var workspace in workspaces.Where(w => liveProjects.Contains(w.Id.ToString("N"))))
        {
            if (!inventory.Tenants.TryGetValue(workspace.Id, out var listing) || listing is null)
            {
                continue;
            }

            var key = LangflowCredential.FromApiKey(upstreams.Credentials.Unprotect(workspace.LangflowApiKeyCipher!));
            foreach (var project in listing.Projects)
            {
                if (ProjectName().Match(project.Name) is not { Success: true } match
                    || !IsOrphan(match.Groups[1].Value, workspace.Id, s => s.LangflowProjectId, project.Id.ToString()))
                {
                    continue;
                }

                drifts.Add(await PruneAsync(request, DriftKind.OrphanLangflowProject, project.Name, $"Langflow project {project.Id} of user {workspace.LangflowUsername}", knownResources.Contains(match.Groups[1].Value),
                    () => IgnoreMissingAsync(() => upstreams.Langflow.DeleteProjectAsync(project.Id, key, cancellationToken))));
            }

            foreach (var flow in listing.Flows)
            {
                if (FlowName().Match(flow.Name) is not { Success: true } match
                    || !IsOrphan(match.Groups[1].Value, workspace.Id, s => s.LangflowFlowId, flow.Id.ToString()))
                {
                    continue;
                }

                drifts.Add(await PruneAsync(request, DriftKind.OrphanFlow, flow.Name, $"Langflow flow {flow.Id} of user {workspace.LangflowUsername}", knownResources.Contains(match.Groups[1].Value),
                    () => IgnoreMissingAsync(() => upstreams.Langflow.DeleteFlowAsync(flow.Id, key, cancellationToken))));
            }
        }

        foreach (var dataset in inventory.Datasets)
        {
            if (DatasetName().Match(dataset.Name) is not { Success: true } match
                || !IsOrphan(match.Groups[1].Value, null, s => s.RagflowDatasetId, dataset.Id))
            {
                continue;
            }

            drifts.Add(await PruneAsync(request, DriftKind.OrphanDataset, dataset.Name, $"RAGFlow dataset {dataset.Id}", knownResources.Contains(match.Groups[1].Value), async () =>
            {
                try
                {
                    // One id per call: upstream's bulk forms would delete every buyer's datasets.
                    await upstreams.Ragflow.DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [dataset.Id] }, cancellationToken);
                }
                catch (Exception exception) when (RagflowException.Find(exception) is { IsNotFound: true })
                {
                    // Already gone.
                }
            }));
        }

        return drifts;

        // An object named for a resource is an orphan when the resource has no live subscription (in this
        // workspace), or when its active subscription records another object (a renamed twin left behind).
        bool IsOrphan(string resourceHex, Guid? workspaceId, Func<Subscription, string?> recorded, string id)
        {
            if (!liveByResource.TryGetValue(resourceHex, out var owner) || (workspaceId is { } w && owner.WorkspaceId != w))
            {
                return true;
            }

            return owner.State == SubscriptionState.Active && recorded(owner) is { } expected && !string.Equals(expected, id, StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>Deletes an orphan with <c>--prune</c>; one not <paramref name="ours"/> (see <see cref="OrphansAsync"/>) is only ever listed.</summary>
    private async Task<Drift> PruneAsync(ReconcileRequest request, DriftKind kind, string subject, string detail, bool ours, Func<Task> delete)
    {
        if (!ours)
        {
            return new Drift(kind, subject, detail + "; named for a project or resource this adapter's database does not record (another deployment's on the same account, or records lost): never pruned, delete it by hand if it is this deployment's", DriftOutcome.Found);
        }

        if (request.DryRun || !request.Prune)
        {
            return new Drift(kind, subject, detail, DriftOutcome.Found);
        }

        try
        {
            await delete();
            logger.LogWarning("Pruned orphan {Kind} {Subject}: {Detail}", kind, subject, detail);
            return new Drift(kind, subject, detail + "; deleted", DriftOutcome.Removed);
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            return new Drift(kind, subject, detail, DriftOutcome.Failed, Describe(exception));
        }
    }

    // ---- Usage -----------------------------------------------------------------------------------------

    private async Task<List<Drift>> UsageDriftAsync(ReconcileRequest request, CancellationToken cancellationToken)
    {
        var preview = await usage.ReportAsync(null, dryRun: true, cancellationToken);
        HashSet<Guid>? inScope = null;
        if (request.Offering is { } offering)
        {
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            inScope = [.. await db.Subscriptions.AsNoTracking().Where(s => s.OfferingUuid == offering).Select(s => s.ResourceUuid).ToListAsync(cancellationToken)];
        }

        var drifted = preview.Rows.Where(r => r.Action is UsageAction.WouldPost or UsageAction.Failed && (inScope is null || inScope.Contains(r.ResourceUuid))).ToList();
        var drifts = new List<Drift>();
        foreach (var resource in drifted.GroupBy(r => r.ResourceUuid))
        {
            var rows = resource.ToList();
            IReadOnlyList<UsageReportRow> sent = [];
            if (!request.DryRun)
            {
                sent = await usage.ReportResourceAsync(resource.Key, cancellationToken);
            }

            foreach (var row in rows)
            {
                var subject = $"{row.ResourceUuid} {row.Period} {row.Component}";
                var detail = row.Action == UsageAction.Failed
                    ? $"Waldur's total could not be read; ledger {row.Ours}"
                    : $"Waldur holds {row.Waldur?.ToString() ?? "nothing"}, the ledger {row.Ours}";
                if (request.DryRun)
                {
                    drifts.Add(new Drift(DriftKind.UsageDrift, subject, detail, row.Action == UsageAction.Failed ? DriftOutcome.Failed : DriftOutcome.Found, row.Detail));
                    continue;
                }

                var result = sent.FirstOrDefault(s => s.Period == row.Period && s.Component == row.Component);
                drifts.Add(result?.Action switch
                {
                    UsageAction.Posted or UsageAction.Unchanged => new Drift(DriftKind.UsageDrift, subject, detail + "; reported again", DriftOutcome.Fixed),
                    // A month Waldur has closed: what it lacks is in the current month's total.
                    UsageAction.ClosedPeriod => new Drift(DriftKind.UsageDrift, subject, detail + "; " + result.Detail, DriftOutcome.Fixed),
                    _ => new Drift(DriftKind.UsageDrift, subject, detail, DriftOutcome.Failed, result?.Detail ?? "not sent; the next usage report retries"),
                });
            }
        }

        return drifts;
    }

    // ---- Organization names ----------------------------------------------------------------------------

    /// <summary>
    /// Names the organizations recorded without a name (a credit grant before their first order, or rows older than
    /// naming on first sight), which orders and moves alone would leave nameless until their next one: one Waldur
    /// lookup each. Organizations belong to no offering, so <c>--offering</c> does not narrow this.
    /// </summary>
    private async Task<List<Drift>> NamelessOrganizationsAsync(ReconcileRequest request, CancellationToken cancellationToken)
    {
        HashSet<Guid> nameless;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            nameless = await CustomerRecords.NamelessAsync(db, cancellationToken);
        }

        var drifts = new List<Drift>();
        foreach (var organization in nameless)
        {
            string name;
            try
            {
                name = ColumnText.Clip((await waldur.GetCustomerNameAsync(organization, cancellationToken)).Name, Tenants.Customer.MaxNameLength);
            }
            catch (ApiException exception) when (UpstreamFailures.IsNotFound(exception))
            {
                // Not in Waldur (or not visible to the adapter): nothing to name it with, and nothing to repair.
                logger.LogDebug("Organization {CustomerId} has no name and Waldur does not know it", organization);
                continue;
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested && exception is not OperationCanceledException)
            {
                logger.LogWarning(exception, "Reading the name of organization {CustomerId} from Waldur failed", organization);
                drifts.Add(new Drift(DriftKind.NamelessOrganization, organization.ToString(), "organization has no name", DriftOutcome.Failed, Describe(exception)));
                continue;
            }

            if (name.Length == 0)
            {
                continue;
            }

            var detail = $"organization has no name; Waldur names it '{name}'";
            if (request.DryRun)
            {
                drifts.Add(new Drift(DriftKind.NamelessOrganization, organization.ToString(), detail, DriftOutcome.Found));
                continue;
            }

            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            if (await CustomerRecords.NameIfNamelessAsync(db, organization, name, clock.GetUtcNow(), cancellationToken))
            {
                logger.LogInformation("Named organization {CustomerId} '{CustomerName}' from Waldur", organization, name);
                drifts.Add(new Drift(DriftKind.NamelessOrganization, organization.ToString(), detail + "; named", DriftOutcome.Fixed));
            }
        }

        return drifts;
    }

    // ---- Helpers ---------------------------------------------------------------------------------------

    private static string Describe(Exception exception) => RagflowException.Find(exception) is { } ragflow
        ? $"RAGFlow code {ragflow.Code}: {ragflow.Message}"
        : UpstreamFailures.Describe(exception.InnerException is ApiException inner ? inner : exception);

    private static async Task IgnoreMissingAsync(Func<Task> delete)
    {
        try
        {
            await delete();
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
        {
            // Already gone.
        }
    }

    [GeneratedRegex(@"^cmp-([0-9a-f]{32})$", RegexOptions.CultureInvariant)]
    private static partial Regex UserName();

    [GeneratedRegex(@"^cmp-([0-9a-f]{32})(?: \(\d+\))?$", RegexOptions.CultureInvariant)]
    private static partial Regex ProjectName();

    [GeneratedRegex(@" cmp-([0-9a-f]{32})(?: \(\d+\))?$", RegexOptions.CultureInvariant)]
    private static partial Regex FlowName();

    [GeneratedRegex(@"^cmp-([0-9a-f]{32})(?:\(\d+\))?$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex DatasetName();

    /// <summary>The Langflow and RAGFlow services, present only when <c>Langflow:BaseUrl</c> is configured.</summary>
    private sealed record Upstreams(ILangflowApi Langflow, LangflowSuperuser Superuser, IRagflowApi Ragflow, UpstreamCredentials Credentials, LangflowRagflowProvisioner Provisioner, LangflowTenant Tenant)
    {
        public static Upstreams? From(IServiceProvider services) =>
            services.GetServices<ITenantProvisioner>().OfType<LangflowRagflowProvisioner>().FirstOrDefault() is { } provisioner
                ? new Upstreams(
                    services.GetRequiredService<ILangflowApi>(),
                    services.GetRequiredService<LangflowSuperuser>(),
                    services.GetRequiredService<IRagflowApi>(),
                    services.GetRequiredService<UpstreamCredentials>(),
                    provisioner,
                    services.GetRequiredService<LangflowTenant>())
                : null;
    }
}
