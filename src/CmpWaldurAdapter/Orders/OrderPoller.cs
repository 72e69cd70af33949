using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// Finds actionable orders by asking Waldur, for when events are off, were lost while disconnected, or
/// never came (older Waldur versions emit nothing for executing orders).
/// </summary>
public sealed class OrderPoller(IWaldurApi waldur, ServedOfferings catalog, OrderInbox inbox, TimeProvider clock, IOptionsMonitor<WaldurOptions> waldurOptions, IOptionsMonitor<OrdersOptions> options, ILogger<OrderPoller> logger)
{
    private static readonly string[] ActionableStates = [WaldurOrderStates.PendingProvider, WaldurOrderStates.Executing];

    /// <summary>Lists every actionable order of the served offerings (or of the one given).</summary>
    public async Task<IReadOnlyList<OrderDetails>> ListActionableAsync(CancellationToken cancellationToken, Guid? offeringUuid = null)
    {
        var pageSize = waldurOptions.CurrentValue.PageSize;
        var orders = new List<OrderDetails>();
        foreach (var offering in catalog.Offerings.Where(o => offeringUuid is null || o.Uuid == offeringUuid))
        {
            orders.AddRange(await WaldurPages.ReadAllAsync(
                (page, size, token) => waldur.ListOrdersAsync(offering.Uuid, ActionableStates, page, size, token), pageSize, cancellationToken)
                .ToListAsync(cancellationToken));
        }

        return orders;
    }

    /// <summary>Feeds every actionable order (of the served offerings, or of the one given) to the inbox; already-known ones are no-ops. Returns how many were new.</summary>
    public async Task<int> PollAsync(CancellationToken cancellationToken, Guid? offeringUuid = null)
    {
        var added = 0;
        foreach (var order in await ListActionableAsync(cancellationToken, offeringUuid))
        {
            if (order.Uuid is { } uuid && await inbox.EnqueueAsync(uuid, WaldurEnums.ToWire(order.State), "poll", refeed: false, cancellationToken))
            {
                added++;
            }
        }

        if (added > 0)
        {
            logger.LogInformation("Polling found {Count} new actionable orders", added);
        }

        return added;
    }

    /// <summary>Makes orders that sat in pending-provider or executing for too long due again. Returns how many.</summary>
    public async Task<int> RefeedStuckAsync(CancellationToken cancellationToken)
    {
        var threshold = clock.GetUtcNow() - options.CurrentValue.StuckAfter;
        var refed = 0;
        foreach (var order in await ListActionableAsync(cancellationToken))
        {
            var lastChange = order.Modified ?? order.Created;
            if (order.Uuid is { } uuid && lastChange < threshold
                && await inbox.EnqueueAsync(uuid, WaldurEnums.ToWire(order.State), "refeed", refeed: true, cancellationToken))
            {
                refed++;
                logger.LogWarning("Order {OrderUuid} has been {OrderState} since {Modified}; fed to the inbox again", uuid, WaldurEnums.ToWire(order.State), lastChange);
            }
        }

        return refed;
    }
}
