using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Events;

/// <summary>
/// Mirrors Waldur's paused and downscaled flags (set by budget policies or staff) onto subscriptions, so
/// a paused resource stops being served and charged. Driven by RESOURCE events and a periodic sweep.
/// </summary>
public sealed class ResourceStateSync(IWaldurApi waldur, IDbContextFactory<AdapterDbContext> dbs, ServedOfferings catalog, TimeProvider clock, IOptionsMonitor<WaldurOptions> waldurOptions, ILogger<ResourceStateSync> logger)
{
    public async Task SyncAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        var resource = await waldur.GetProviderResourceAsync(resourceUuid, cancellationToken);
        await ApplyAsync(resource, cancellationToken);
    }

    /// <summary>Re-reads every resource of the served offerings. Returns how many subscriptions changed.</summary>
    public async Task<int> SyncAllAsync(CancellationToken cancellationToken)
    {
        var changed = 0;
        var pageSize = waldurOptions.CurrentValue.PageSize;
        foreach (var offering in catalog.Offerings)
        {
            for (var page = 1; ; page++)
            {
                var batch = await waldur.ListProviderResourcesAsync(offering.Uuid, ["OK", "Erred", "Updating"], page, pageSize, cancellationToken);
                foreach (var resource in batch)
                {
                    changed += await ApplyAsync(resource, cancellationToken) ? 1 : 0;
                }

                if (batch.Count < pageSize)
                {
                    break;
                }
            }
        }

        return changed;
    }

    private async Task<bool> ApplyAsync(Resource resource, CancellationToken cancellationToken)
    {
        if (resource.Uuid is not { } uuid)
        {
            return false;
        }

        var paused = resource.Paused ?? false;
        var downscaled = resource.Downscaled ?? false;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
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

        return changed > 0;
    }
}

/// <summary>Periodic sweep of paused/downscaled flags, for RESOURCE events lost while disconnected.</summary>
[DisallowConcurrentExecution]
public sealed class SyncResourceStatesJob(ResourceStateSync sync) : IJob
{
    public static readonly JobKey Key = new("sync-resource-states", "events");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await sync.SyncAllAsync(cancellationToken);
}
