using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class BillingPeriodTests
{
    [Theory]
    [InlineData("2026-03-31T23:59:59.9999999+00:00", "2026-03")]
    [InlineData("2026-04-01T00:00:00+00:00", "2026-04")]
    // An instant is placed by its UTC month, whatever offset it is written with.
    [InlineData("2026-04-01T01:30:00+02:00", "2026-03")]
    [InlineData("2026-12-31T22:00:00-05:00", "2027-01")]
    public void An_instant_belongs_to_its_utc_calendar_month(string instant, string month)
    {
        Assert.Equal(month, BillingPeriod.Of(DateTimeOffset.Parse(instant, System.Globalization.CultureInfo.InvariantCulture)).ToString());
    }

    [Fact]
    public void A_period_starts_at_midnight_utc_on_the_first_and_ends_where_the_next_starts()
    {
        var march = BillingPeriod.Of(2026, 3);

        Assert.Equal(new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero), march.Start);
        Assert.Equal(new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero), march.End);
        Assert.Equal("2026-03-01", march.ToWaldurDate());
        Assert.True(march.Contains(march.Start));
        Assert.False(march.Contains(march.End));
        Assert.Equal(BillingPeriod.Of(2026, 2), march.Previous);
        Assert.True(march.Previous < march && march < march.Next);
    }

    [Fact]
    public void A_report_covers_the_current_and_previous_month_oldest_first_across_a_year_boundary()
    {
        var periods = BillingPeriod.Reporting(new DateTimeOffset(2027, 1, 3, 8, 0, 0, TimeSpan.Zero));
        var three = BillingPeriod.Reporting(new DateTimeOffset(2027, 1, 3, 8, 0, 0, TimeSpan.Zero), 3);

        Assert.Equal(["2026-12", "2027-01"], periods.Select(p => p.ToString()));
        Assert.Equal(["2026-11", "2026-12", "2027-01"], three.Select(p => p.ToString()));
        Assert.Throws<ArgumentOutOfRangeException>(() => BillingPeriod.Reporting(DateTimeOffset.UnixEpoch, 0));
    }

    [Theory]
    [InlineData("2026-03", true)]
    [InlineData("2026-13", false)]
    [InlineData("2026-3", false)]
    [InlineData("2026-03-01", false)]
    [InlineData("March", false)]
    [InlineData("", false)]
    [InlineData(null, false)]
    public void Periods_are_written_as_year_and_month(string? text, bool valid)
    {
        Assert.Equal(valid, BillingPeriod.TryParse(text, out var period));
        if (valid)
        {
            Assert.Equal(text, period.ToString());
        }
    }

    [Fact]
    public void Only_a_first_day_names_a_period()
    {
        Assert.Equal(BillingPeriod.Of(2026, 5), BillingPeriod.FromFirstDay(new DateOnly(2026, 5, 1)));
        Assert.Throws<ArgumentException>(() => BillingPeriod.FromFirstDay(new DateOnly(2026, 5, 2)));
    }
}
