using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class WaldurFundingRulesTests
{
    private static readonly Guid Ours = Guid.NewGuid();
    private static readonly Guid Theirs = Guid.NewGuid();
    private static readonly DateOnly Today = new(2026, 3, 10);

    [Fact]
    public void Money_counts_credits_for_any_offering_or_ours_that_have_not_ended()
    {
        FundingCredit[] credits =
        [
            new(100.00m, [], null),
            new(25.50m, [Ours, Theirs], new DateOnly(2026, 4, 1)),
            new(40m, [Theirs], null),
            new(1000m, [], new DateOnly(2026, 3, 10)),
            new(-5m, [], null),
        ];

        Assert.Equal(125.50m, WaldurFundingRules.Money(credits, [Ours], Today));
    }

    [Fact]
    public void A_credit_limited_to_offerings_covers_only_those_served_and_no_credit_is_no_restriction()
    {
        var alsoOurs = Guid.NewGuid();
        FundingCredit[] limited = [new(10m, [Ours, Theirs], null)];
        FundingCredit[] elsewhere = [new(10m, [Theirs], null)];
        FundingCredit[] unrestricted = [new(10m, [Ours], null), new(5m, [], null)];
        FundingCredit[] ended = [new(10m, [Theirs], Today)];

        Assert.Equal([Ours], WaldurFundingRules.Coverage(limited, [Ours, alsoOurs], Today)!.Order());
        Assert.Empty(WaldurFundingRules.Coverage(elsewhere, [Ours, alsoOurs], Today)!);
        Assert.Null(WaldurFundingRules.Coverage(unrestricted, [Ours, alsoOurs], Today));
        Assert.Null(WaldurFundingRules.Coverage(ended, [Ours], Today));
        Assert.Null(WaldurFundingRules.Coverage([], [Ours], Today));
        Assert.True(WaldurFundingRules.Covers(null, alsoOurs));
        Assert.True(WaldurFundingRules.Covers(new HashSet<Guid> { Ours }, Ours));
        Assert.False(WaldurFundingRules.Covers(new HashSet<Guid> { Ours }, alsoOurs));
    }

    [Theory]
    [InlineData("125.50", "0.01", 12550)]
    [InlineData("0.019", "0.01", 1)]
    [InlineData("0.009", "0.01", 0)]
    [InlineData("10", "0.03", 333)]
    [InlineData("-4", "0.01", 0)]
    public void Money_buys_whole_credits_only(string money, string price, long credits)
    {
        Assert.Equal(credits, WaldurFundingRules.FundedCredits(Parse(money), Parse(price)));
    }

    [Fact]
    public void A_credit_price_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => WaldurFundingRules.FundedCredits(10m, 0m));
    }

    [Theory]
    [InlineData("2026-03-15T12:00:00Z", 0, "2026-03")]
    [InlineData("2026-04-01T00:00:00Z", 0, "2026-04")]
    [InlineData("2026-04-01T01:59:59Z", 2, "2026-03")]
    [InlineData("2026-04-01T02:00:00Z", 2, "2026-04")]
    [InlineData("2027-01-01T10:00:00Z", 24, "2026-12")]
    public void The_previous_month_stays_uninvoiced_until_waldur_finalizes_it(string now, int graceHours, string firstUninvoiced)
    {
        var period = WaldurFundingRules.FirstUninvoicedPeriod(DateTimeOffset.Parse(now, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.FromHours(graceHours), TimeZoneInfo.Utc);

        Assert.Equal(firstUninvoiced, period.ToString());
    }

    [Theory]
    // East of UTC: Waldur closes January at midnight in Berlin, 23:00 UTC on 31 January (22:00 in summer time).
    [InlineData("Europe/Berlin", "2026-01-31T22:59:59Z", 0, "2026-01")]
    [InlineData("Europe/Berlin", "2026-01-31T23:30:00Z", 0, "2026-02")]
    [InlineData("Europe/Berlin", "2026-07-31T22:00:00Z", 0, "2026-08")]
    [InlineData("Europe/Berlin", "2026-01-31T23:30:00Z", 2, "2026-01")]
    [InlineData("Europe/Berlin", "2026-02-01T01:00:00Z", 2, "2026-02")]
    // West of UTC: midnight UTC is still January's last evening in New York; Waldur closes it at 05:00 UTC.
    [InlineData("America/New_York", "2026-02-01T03:00:00Z", 0, "2026-01")]
    [InlineData("America/New_York", "2026-02-01T05:00:00Z", 0, "2026-02")]
    [InlineData("America/New_York", "2026-02-01T06:00:00Z", 2, "2026-01")]
    [InlineData("America/New_York", "2026-02-01T07:00:00Z", 2, "2026-02")]
    [InlineData("UTC", "2026-01-31T23:30:00Z", 0, "2026-01")]
    [InlineData("UTC", "2026-02-01T00:00:00Z", 0, "2026-02")]
    public void The_previous_month_is_invoiced_from_midnight_on_the_first_in_waldurs_time_zone_plus_the_grace(string zone, string now, int graceHours, string firstUninvoiced)
    {
        var period = WaldurFundingRules.FirstUninvoicedPeriod(
            DateTimeOffset.Parse(now, System.Globalization.CultureInfo.InvariantCulture), TimeSpan.FromHours(graceHours), TimeZoneInfo.FindSystemTimeZoneById(zone));

        Assert.Equal(firstUninvoiced, period.ToString());
    }

    [Fact]
    public void The_balance_is_funded_minus_uninvoiced_and_never_negative()
    {
        Assert.Equal(12500, WaldurFundingRules.Balance(12550, 50));
        Assert.Equal(0, WaldurFundingRules.Balance(10, 50));
    }

    private static decimal Parse(string text) => decimal.Parse(text, System.Globalization.CultureInfo.InvariantCulture);
}
