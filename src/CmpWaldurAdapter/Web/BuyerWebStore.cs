using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>Reads and changes a subscription's <see cref="BuyerWebSettings"/>; a subscription without a row has the defaults.</summary>
public sealed class BuyerWebStore(IDbContextFactory<AdapterDbContext> dbs, IOptions<WebOptions> options, TimeProvider clock)
{
    public async Task<BuyerWebSettings> GetAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.BuyerWebSettings.AsNoTracking().SingleOrDefaultAsync(s => s.SubscriptionId == subscriptionId, cancellationToken)
            ?? Defaults(subscriptionId);
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the row (created on first change) and saves it. Two first changes at once
    /// (a console save beside an order's report) both insert; the loser applies its change to the winner's row.
    /// </summary>
    /// <param name="buyerChange">False for the adapter's own bookkeeping (link issue times), which leaves
    /// <see cref="BuyerWebSettings.UpdatedAt"/> to what the buyer changed (the logo's Last-Modified, the spend alert's month).</param>
    public async Task<BuyerWebSettings> UpdateAsync(Guid subscriptionId, Action<BuyerWebSettings> change, CancellationToken cancellationToken, bool buyerChange = true)
    {
        try
        {
            return await ChangeAsync(subscriptionId, change, buyerChange, cancellationToken);
        }
        catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception))
        {
            return await ChangeAsync(subscriptionId, change, buyerChange, cancellationToken);
        }
    }

    private async Task<BuyerWebSettings> ChangeAsync(Guid subscriptionId, Action<BuyerWebSettings> change, bool buyerChange, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var settings = await db.BuyerWebSettings.SingleOrDefaultAsync(s => s.SubscriptionId == subscriptionId, cancellationToken);
        if (settings is null)
        {
            settings = Defaults(subscriptionId);
            db.BuyerWebSettings.Add(settings);
        }

        var alertBefore = settings.MonthlySpendAlertCredits;
        change(settings);
        var now = clock.GetUtcNow();
        if (settings.MonthlySpendAlertCredits != alertBefore)
        {
            settings.MonthlySpendAlertSetAt = now;
        }

        if (buyerChange || settings.UpdatedAt == default)
        {
            settings.UpdatedAt = now;
        }

        await db.SaveChangesAsync(cancellationToken);
        return settings;
    }

    private BuyerWebSettings Defaults(Guid subscriptionId) =>
        new() { SubscriptionId = subscriptionId, WidgetDailyMessageCap = options.Value.NewWidgetDailyMessageCap };
}
