using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// One process works on an order at a time, enforced by the database: a lease is taken with a single
/// conditional UPDATE, so two replicas (or a replica and the CLI) can never both win.
/// </summary>
public sealed class OrderLeases(IDbContextFactory<AdapterDbContext> dbs, AdapterInstance instance, TimeProvider clock, IOptionsMonitor<OrdersOptions> options)
{
    public string Owner => instance.Id;

    /// <summary>Creates the order's progress record if this is the first time the adapter sees the order.</summary>
    public async Task EnsureRecordAsync(Guid orderUuid, OrderType type, Guid resourceUuid, Guid offeringUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        if (await db.Orders.AnyAsync(o => o.OrderUuid == orderUuid, cancellationToken))
        {
            return;
        }

        var now = clock.GetUtcNow();
        db.Orders.Add(new OrderRecord
        {
            OrderUuid = orderUuid,
            Type = type,
            ResourceUuid = resourceUuid,
            OfferingUuid = offeringUuid,
            Phase = OrderPhase.Received,
            CreatedAt = now,
            UpdatedAt = now,
        });
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception))
        {
            // Another process created it a moment ago: that is fine, the lease decides who works on it.
        }
    }

    /// <summary>
    /// Takes the order if nobody holds it, or the holder's lease ran out (it crashed). Not re-entrant:
    /// two workers of the same process are as exclusive as two replicas.
    /// </summary>
    public async Task<bool> TryAcquireAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var until = now + options.CurrentValue.LeaseDuration;
        var owner = Owner;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var taken = await db.Orders
            .Where(o => o.OrderUuid == orderUuid && (o.LeaseOwner == null || o.LeaseExpiresAt < now))
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, owner).SetProperty(o => o.LeaseExpiresAt, until), cancellationToken);
        return taken == 1;
    }

    public async Task ReleaseAsync(Guid orderUuid)
    {
        var owner = Owner;
        await using var db = await dbs.CreateDbContextAsync();
        await db.Orders
            .Where(o => o.OrderUuid == orderUuid && o.LeaseOwner == owner)
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, (string?)null).SetProperty(o => o.LeaseExpiresAt, (DateTimeOffset?)null));
    }
}
