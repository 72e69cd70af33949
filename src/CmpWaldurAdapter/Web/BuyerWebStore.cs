using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Web;

/// <summary>Reads and changes a subscription's <see cref="BuyerWebSettings"/>; a subscription without a row has the defaults.</summary>
public sealed class BuyerWebStore(IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock)
{
    public async Task<BuyerWebSettings> GetAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.BuyerWebSettings.AsNoTracking().SingleOrDefaultAsync(s => s.SubscriptionId == subscriptionId, cancellationToken)
            ?? new BuyerWebSettings { SubscriptionId = subscriptionId };
    }

    /// <summary>Applies <paramref name="change"/> to the row (created on first change) and saves it.</summary>
    public async Task<BuyerWebSettings> UpdateAsync(Guid subscriptionId, Action<BuyerWebSettings> change, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var settings = await db.BuyerWebSettings.SingleOrDefaultAsync(s => s.SubscriptionId == subscriptionId, cancellationToken);
        if (settings is null)
        {
            settings = new BuyerWebSettings { SubscriptionId = subscriptionId };
            db.BuyerWebSettings.Add(settings);
        }

        change(settings);
        settings.UpdatedAt = clock.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
        return settings;
    }
}
