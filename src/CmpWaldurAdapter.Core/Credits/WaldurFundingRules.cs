namespace CmpWaldurAdapter.Core.Credits;

/// <summary>One Waldur customer credit as the funding formula sees it.</summary>
/// <param name="Value">Remaining money (Waldur reduces it when it finalizes a month's invoice).</param>
/// <param name="Offerings">Offerings the credit is limited to; empty = every offering.</param>
/// <param name="EndDate">Expiry; a credit that has ended funds nothing new.</param>
public sealed record FundingCredit(decimal Value, IReadOnlyCollection<Guid> Offerings, DateOnly? EndDate);

/// <summary>
/// The Waldur-funded balance (README "Waldur-funded balance"):
/// <code>
/// balance   = max(0, floor(money / credit_price) − uninvoiced)
/// money     = Σ value of the organization's customer credits that apply to a served offering and have not ended
/// uninvoiced = settled charges of the covered offerings in periods Waldur has not invoiced yet (from <see cref="FirstUninvoicedPeriod"/>)
/// available = balance − holds, spendable only by subscriptions of the covered offerings (<see cref="Coverage"/>)
/// </code>
/// </summary>
public static class WaldurFundingRules
{
    /// <summary>The money of the credits that can pay for the served offerings at <paramref name="today"/>.</summary>
    public static decimal Money(IEnumerable<FundingCredit> credits, IReadOnlyCollection<Guid> servedOfferings, DateOnly today) =>
        credits
            .Where(c => c.EndDate is null || c.EndDate > today)
            .Where(c => c.Offerings.Count == 0 || c.Offerings.Any(servedOfferings.Contains))
            .Sum(c => Math.Max(0m, c.Value));

    /// <summary>
    /// The served offerings the money may be spent on, or null for all of them. Waldur compensates from a credit
    /// only the invoice items of the offerings it lists (none listed: every offering), so a restricted credit
    /// funds only those subscriptions. An organization has one customer credit in Waldur; should several
    /// apply, their money is one pool that the offerings any of them covers share.
    /// </summary>
    public static IReadOnlySet<Guid>? Coverage(IEnumerable<FundingCredit> credits, IReadOnlyCollection<Guid> servedOfferings, DateOnly today)
    {
        var current = credits.Where(c => c.EndDate is null || c.EndDate > today).ToList();
        // No credit at all is a lack of money (refused as such), not a restriction.
        if (current.Count == 0 || current.Any(c => c.Offerings.Count == 0))
        {
            return null;
        }

        return current.SelectMany(c => c.Offerings).Where(servedOfferings.Contains).ToHashSet();
    }

    /// <summary>Whether <paramref name="offering"/>'s subscriptions may spend the funding of <paramref name="coverage"/>.</summary>
    public static bool Covers(IReadOnlySet<Guid>? coverage, Guid offering) => coverage is null || coverage.Contains(offering);

    /// <summary>Whole credits the money buys; a fraction of a credit buys nothing.</summary>
    public static long FundedCredits(decimal money, decimal creditPrice)
    {
        if (creditPrice <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(creditPrice), creditPrice, "The credit price must be positive.");
        }

        var credits = decimal.Floor(Math.Max(0m, money) / creditPrice);
        return credits >= CreditRules.MaxAmount ? CreditRules.MaxAmount : (long)credits;
    }

    /// <summary>
    /// The oldest month whose usage Waldur has not yet taken off the customer credits. Waldur closes the previous month's
    /// invoice at midnight on the 1st in its own time zone (<paramref name="waldurZone"/>: its celery beat runs on its
    /// <c>TIME_ZONE</c>), or <paramref name="finalizationGrace"/> later (its <c>INVOICE_FINALIZATION_GRACE_PERIOD_HOURS</c>);
    /// until then that month is still open. The months are the ledger's UTC months, which the usage report files under the
    /// same month in Waldur (<see cref="BillingPeriod.ReportDate"/>).
    /// </summary>
    public static BillingPeriod FirstUninvoicedPeriod(DateTimeOffset now, TimeSpan finalizationGrace, TimeZoneInfo waldurZone)
    {
        // East of UTC the next UTC month may already have begun in Waldur.
        var period = BillingPeriod.Of(now).Next;
        while (now < period.StartIn(waldurZone) + finalizationGrace)
        {
            period = period.Previous;
        }

        return period;
    }

    public static long Balance(long fundedCredits, long uninvoicedCredits) => Math.Max(0, fundedCredits - uninvoicedCredits);
}
