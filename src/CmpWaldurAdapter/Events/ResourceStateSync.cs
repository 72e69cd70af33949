using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;
using Refit;

namespace CmpWaldurAdapter.Events;

/// <summary>
/// Mirrors Waldur's paused and downscaled flags (set by budget policies or staff) onto subscriptions, so
/// a paused resource stops being served and charged, and follows a resource whose project moved to another
/// organization, so its charges go to that organization's credits. Driven by RESOURCE events and a periodic sweep,
/// which also names organizations recorded without a name (credits granted before their first order) from the
/// organization name Waldur lists with their resources. A resource Waldur terminated or erased without a Terminate order
/// (staff did) stops being served; one terminated also has its tenant removed, as a Terminate order would: by the sweep
/// itself, or after an event by <see cref="TearDownWorker"/>, so slow upstream calls hold back no later event.
/// </summary>
public sealed class ResourceStateSync(
    IWaldurApi waldur,
    IDbContextFactory<AdapterDbContext> dbs,
    ServedOfferings catalog,
    ApiKeyService keys,
    OrderProcessor orders,
    TearDownWorker teardowns,
    TimeProvider clock,
    IOptionsMonitor<WaldurOptions> waldurOptions,
    ILogger<ResourceStateSync> logger)
{
    /// <summary>A RESOURCE event: applies what Waldur says of the resource now, and queues a teardown it makes due.</summary>
    public Task SyncAsync(Guid resourceUuid, CancellationToken cancellationToken) => SyncOneAsync(resourceUuid, nameless: null, queue: true, cancellationToken);

    /// <summary>
    /// Reads one resource and applies what Waldur says of it; one Waldur no longer shows (404) may have been erased. With
    /// <paramref name="queue"/> (an event) a teardown is queued, not run.
    /// </summary>
    private async Task<bool> SyncOneAsync(Guid resourceUuid, HashSet<Guid>? nameless, bool queue, CancellationToken cancellationToken)
    {
        Resource resource;
        try
        {
            resource = await waldur.GetProviderResourceAsync(resourceUuid, cancellationToken);
        }
        catch (ApiException exception) when (UpstreamFailures.IsNotFound(exception))
        {
            return await GoneAsync(resourceUuid, queue, cancellationToken);
        }

        return await ApplyAsync(resource, nameless, queue, cancellationToken);
    }

    /// <summary>Re-reads every resource of the served offerings. Returns how many subscriptions changed.</summary>
    public async Task<int> SyncAllAsync(CancellationToken cancellationToken)
    {
        var changed = 0;
        var pageSize = waldurOptions.CurrentValue.PageSize;
        // Read once per sweep, so organizations with a name cost nothing, and a nameless one one update at most.
        HashSet<Guid> nameless;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            nameless = await CustomerRecords.NamelessAsync(db, cancellationToken);
        }

        foreach (var offering in catalog.Offerings)
        {
            var listed = new HashSet<Guid>();
            var resources = WaldurPages.ReadAllAsync(
                (page, size, token) => waldur.ListProviderResourcesAsync(offering.Uuid, ["OK", "Erred", "Updating"], page, size, token), pageSize, cancellationToken);
            await foreach (var resource in resources)
            {
                listed.Add(resource.Uuid ?? Guid.Empty);
                changed += await ApplyAsync(resource, nameless, queue: false, cancellationToken) ? 1 : 0;
            }

            changed += await SyncUnlistedAsync(offering.Uuid, listed, nameless, cancellationToken);
        }

        return changed;
    }

    /// <summary>
    /// Applies what Waldur says of one resource. <paramref name="nameless"/> (the sweep's organizations without a name,
    /// null outside a sweep) loses the resource's organization once named from it, so each is updated once per sweep.
    /// </summary>
    private async Task<bool> ApplyAsync(Resource resource, HashSet<Guid>? nameless, bool queue, CancellationToken cancellationToken)
    {
        if (resource.Uuid is not { } uuid)
        {
            return false;
        }

        if (resource.State == ResourceState.Terminated)
        {
            // Served no more at once; the teardown may wait for an order of the resource, or fail, and be tried again.
            var ended = await EndServiceAsync(uuid, erased: false, cancellationToken);
            if (queue)
            {
                teardowns.Enqueue(uuid, resume: false);
                return ended;
            }

            return await orders.TearDownTerminatedAsync(uuid, cancellationToken) || ended;
        }

        // One context per resource: a sweep goes through every resource of the served offerings.
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var moved = resource.Customer_uuid is { } customer && await MoveAsync(db, uuid, customer, resource, cancellationToken);
        var paused = resource.Paused ?? false;
        var downscaled = resource.Downscaled ?? false;
        var changed = await db.Subscriptions
            .Where(s => s.ResourceUuid == uuid && (s.Paused != paused || s.Downscaled != downscaled))
            .ExecuteUpdateAsync(set => set
                .SetProperty(s => s.Paused, paused)
                .SetProperty(s => s.Downscaled, downscaled)
                .SetProperty(s => s.UpdatedAt, clock.GetUtcNow()), cancellationToken);
        if (changed > 0)
        {
            logger.LogInformation("Resource {ResourceUuid} is now paused={Paused}, downscaled={Downscaled}", uuid, paused, downscaled);
        }

        if (resource.Customer_uuid is { } owner && nameless?.Remove(owner) == true
            && await CustomerRecords.NameIfNamelessAsync(db, owner, resource.Customer_name, clock.GetUtcNow(), cancellationToken))
        {
            logger.LogInformation("Named organization {CustomerId} '{CustomerName}' from Waldur's resources", owner, resource.Customer_name);
        }

        return changed > 0 || moved;
    }

    /// <summary>
    /// Looks one by one at the subscriptions of <paramref name="offering"/> not yet terminated whose resources the sweep did not
    /// list (Waldur lists only live ones): one Waldur terminated or erased without a Terminate order reaching the adapter stops
    /// being served, and one terminated whose teardown failed (it stays terminating) has it tried again.
    /// </summary>
    private async Task<int> SyncUnlistedAsync(Guid offering, HashSet<Guid> listed, HashSet<Guid> nameless, CancellationToken cancellationToken)
    {
        List<Guid> unlisted;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            unlisted = (await db.Subscriptions.AsNoTracking()
                    .Where(s => s.OfferingUuid == offering && s.State != SubscriptionState.Terminated)
                    .Select(s => s.ResourceUuid)
                    .ToListAsync(cancellationToken))
                .Where(r => !listed.Contains(r))
                .ToList();
        }

        var changed = 0;
        foreach (var resourceUuid in unlisted)
        {
            changed += await SyncOneAsync(resourceUuid, nameless, queue: false, cancellationToken) ? 1 : 0;
        }

        return changed;
    }

    /// <summary>
    /// Waldur answers 404 for the resource. A subscription still served may have been erased (<see cref="EndErasedAsync"/>).
    /// One terminating has nothing more for a 404 to end, so the offering is not read (a teardown failing sweep after sweep
    /// costs one Waldur request each, not two): a teardown begun while Waldur showed the resource terminated goes on (erased
    /// since, it was terminated all the same); one a Terminate order is doing is left to it, as a 404 alone starts none.
    /// </summary>
    private async Task<bool> GoneAsync(Guid resourceUuid, bool queue, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.ResourceUuid == resourceUuid)
            .Select(s => new { s.State, s.OfferingUuid })
            .SingleOrDefaultAsync(cancellationToken);
        switch (subscription?.State)
        {
            case null or SubscriptionState.Terminated:
                return false;
            case SubscriptionState.Terminating when queue:
                teardowns.Enqueue(resourceUuid, resume: true);
                return false;
            case SubscriptionState.Terminating:
                return await orders.ResumeTearDownAsync(resourceUuid, cancellationToken);
            default:
                return await EndErasedAsync(resourceUuid, subscription!.OfferingUuid, cancellationToken);
        }
    }

    /// <summary>
    /// Waldur answers 404 for what the adapter may not see, too: a resource counts as erased only while its offering is
    /// still visible, or an adapter that lost its role in Waldur would stop serving every buyer at once.
    /// </summary>
    private async Task<bool> EndErasedAsync(Guid resourceUuid, Guid offering, CancellationToken cancellationToken)
    {
        try
        {
            await waldur.GetProviderOfferingAsync(offering, cancellationToken);
        }
        catch (ApiException exception) when (UpstreamFailures.IsNotFound(exception))
        {
            logger.LogWarning("Resource {ResourceUuid} and its offering {OfferingUuid} are not visible to the adapter: check its role in Waldur; the subscription is kept", resourceUuid, offering);
            return false;
        }

        return await EndServiceAsync(resourceUuid, erased: true, cancellationToken);
    }

    /// <summary>
    /// Waldur terminated or erased the resource without a Terminate order reaching the adapter (staff did): its subscription
    /// is no longer served. Terminated, it is left terminating for its teardown (<see cref="OrderProcessor.TearDownTerminatedAsync"/>).
    /// Erased, it is terminated at once, and what it has in Langflow and RAGFlow is left to <c>reconcile</c>, which lists it
    /// as orphans and prunes them: a 404 is no proof (see <see cref="EndErasedAsync"/>), and removing a buyer's agent and
    /// knowledge base cannot be undone. A subscription a Terminate order is removing is left to that order.
    /// </summary>
    private async Task<bool> EndServiceAsync(Guid resourceUuid, bool erased, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var state = erased ? SubscriptionState.Terminated : SubscriptionState.Terminating;
        DateTimeOffset? terminatedAt = erased ? now : null;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.ResourceUuid == resourceUuid && s.State != SubscriptionState.Terminating && s.State != SubscriptionState.Terminated)
            .Select(s => new { s.Id, s.OfferingUuid })
            .SingleOrDefaultAsync(cancellationToken);
        if (subscription is null)
        {
            return false;
        }

        var id = subscription.Id;
        if (!erased)
        {
            // Recorded first: once terminating, the subscription's teardown is known to be due even if this process stops now.
            await orders.RecordTearDownAsync(resourceUuid, subscription.OfferingUuid, cancellationToken);
        }

        // The version moves on, so an order saving this row meanwhile retries and sees it terminated.
        var ended = await db.Subscriptions
            .Where(s => s.Id == id && s.State != SubscriptionState.Terminating && s.State != SubscriptionState.Terminated)
            .ExecuteUpdateAsync(set => set
                .SetProperty(s => s.State, state)
                .SetProperty(s => s.TerminatedAt, terminatedAt)
                .SetProperty(s => s.Version, s => s.Version + 1)
                .SetProperty(s => s.UpdatedAt, now), cancellationToken);
        keys.Forget(id);
        if (ended > 0 && erased)
        {
            logger.LogWarning("Resource {ResourceUuid} was erased in Waldur without a Terminate order: subscription {SubscriptionId} is no longer served; run reconcile to remove what it left in Langflow and RAGFlow",
                resourceUuid, id);
        }
        else if (ended > 0)
        {
            logger.LogWarning("Resource {ResourceUuid} was terminated in Waldur without a Terminate order: subscription {SubscriptionId} is no longer served; removing what it has in Langflow and RAGFlow",
                resourceUuid, id);
        }

        return ended > 0;
    }

    /// <summary>
    /// Puts the resource's subscription under the organization Waldur has it under now (its project was moved), and
    /// the workspace too while the resource is still in that project; the organization is recorded with its name.
    /// Holds and charges name the subscription's organization, so the next ones go to the new organization's credits.
    /// Leaves <paramref name="db"/> as it found it for the flags' update: nothing tracked, no transaction open.
    /// </summary>
    private async Task<bool> MoveAsync(AdapterDbContext db, Guid resourceUuid, Guid customerId, Resource resource, CancellationToken cancellationToken)
    {
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.ResourceUuid == resourceUuid)
            .Select(s => new { s.Id, s.CustomerId, s.WorkspaceId })
            .SingleOrDefaultAsync(cancellationToken);
        if (subscription is null)
        {
            return false;
        }

        // A resource moved to another project leaves its workspace (the old project's runtime) where it is.
        var stillInProject = resource.Project_uuid == subscription.WorkspaceId;
        var workspaceBehind = stillInProject && await db.Workspaces.AnyAsync(w => w.Id == subscription.WorkspaceId && w.CustomerId != customerId, cancellationToken);
        if (subscription.CustomerId == customerId && !workspaceBehind)
        {
            return false;
        }

        var now = clock.GetUtcNow();
        // Recorded meanwhile (another of its resources, an order, or a credit grant, which leaves it nameless): the insert
        // does nothing, and the row gets the name if it has none.
        await CustomerRecords.InsertOrNameAsync(db, customerId, resource.Customer_name, now, cancellationToken);
        await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
        {
            // Versions move on, so orders saving these rows meanwhile retry, and cached authentications elsewhere are stale.
            await db.Subscriptions.Where(s => s.Id == subscription.Id && s.CustomerId != customerId)
                .ExecuteUpdateAsync(set => set
                    .SetProperty(s => s.CustomerId, customerId)
                    .SetProperty(s => s.Version, s => s.Version + 1)
                    .SetProperty(s => s.UpdatedAt, now), cancellationToken);
            if (stillInProject)
            {
                await db.Workspaces.Where(w => w.Id == subscription.WorkspaceId && w.CustomerId != customerId)
                    .ExecuteUpdateAsync(set => set
                        .SetProperty(w => w.CustomerId, customerId)
                        .SetProperty(w => w.Version, w => w.Version + 1)
                        .SetProperty(w => w.UpdatedAt, now), cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        keys.Forget(subscription.Id);
        logger.LogInformation("Resource {ResourceUuid} moved from organization {FromCustomerId} to organization {CustomerId}: its charges now go to the new organization's credits",
            resourceUuid, subscription.CustomerId, customerId);
        return true;
    }
}

/// <summary>
/// Periodic sweep of paused/downscaled flags, moves and terminations without a Terminate order, for RESOURCE events lost while
/// disconnected; tries failed teardowns again and names nameless organizations.
/// </summary>
[DisallowConcurrentExecution]
public sealed class SyncResourceStatesJob(ResourceStateSync sync) : IJob
{
    public static readonly JobKey Key = new("sync-resource-states", "events");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await sync.SyncAllAsync(cancellationToken);
}
