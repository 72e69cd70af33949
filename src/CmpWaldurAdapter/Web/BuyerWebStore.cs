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
    /// (a console save beside an order's report, or on two replicas) both insert the row of defaults; the second insert
    /// does nothing, and each change is applied to the one row.
    /// </summary>
    /// <param name="buyerChange">False for the adapter's own bookkeeping (link issue times), which leaves
    /// <see cref="BuyerWebSettings.UpdatedAt"/> to what the buyer changed (the logo's Last-Modified, the spend alert's month).</param>
    public async Task<BuyerWebSettings> UpdateAsync(Guid subscriptionId, Action<BuyerWebSettings> change, CancellationToken cancellationToken, bool buyerChange = true)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var settings = await db.BuyerWebSettings.SingleOrDefaultAsync(s => s.SubscriptionId == subscriptionId, cancellationToken);
        var now = clock.GetUtcNow();
        if (settings is null)
        {
            // The defaults, as a subscription without a row has them (stamped now, as the change would). A row made
            // meanwhile leaves the insert doing nothing, rather than failing with a unique violation EF Core would log
            // as an error; the change is then applied to that row.
            var defaults = Defaults(subscriptionId);
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO buyer_web_settings (subscription_id, console_link_version, allowed_domains, widget_daily_message_cap, updated_at)
                VALUES ({StoredValues.Uuid(db, subscriptionId)}, {defaults.ConsoleLinkVersion}, {defaults.AllowedDomains}, {defaults.WidgetDailyMessageCap}, {StoredValues.Instant(db, now)})
                ON CONFLICT DO NOTHING
                """, cancellationToken);
            settings = await db.BuyerWebSettings.SingleAsync(s => s.SubscriptionId == subscriptionId, cancellationToken);
        }

        var alertBefore = settings.MonthlySpendAlertCredits;
        change(settings);
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
