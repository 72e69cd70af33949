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

    /// <summary>
    /// Waldur bills a usage in the month its date falls in in its own time zone, the ledger in UTC: the date is the earliest
    /// instant in the month in both, through every zone's daylight-saving changes.
    /// </summary>
    [Theory]
    [InlineData(2026, 1)]
    [InlineData(2026, 3)] // daylight saving starts in March in many zones
    [InlineData(2026, 4)] // and ends in April in the south
    [InlineData(2027, 12)]
    public void The_date_sent_with_a_usage_is_the_first_instant_of_its_month_in_utc_and_in_waldurs_time_zone(int year, int month)
    {
        var period = BillingPeriod.Of(year, month);

        foreach (var zone in TimeZoneInfo.GetSystemTimeZones())
        {
            var date = period.ReportDate(zone);
            var local = TimeZoneInfo.ConvertTime(date, zone);
            Assert.True((year, month) == (date.UtcDateTime.Year, date.UtcDateTime.Month) && (year, month) == (local.Year, local.Month), $"{zone.Id}: {date:O}");
            var before = TimeZoneInfo.ConvertTime(date.AddTicks(-1), zone);
            Assert.True(date == period.Start || (before.Year, before.Month) != (year, month), $"{zone.Id}: {date:O} is not the earliest");
        }

        Assert.Equal(period.Start, period.ReportDate(TimeZoneInfo.Utc));
        Assert.Equal(period.Start, period.ReportDate(TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin")));
        Assert.Equal(period.Start, period.ReportDate(TimeZoneInfo.FindSystemTimeZoneById("Pacific/Kiritimati")));
        Assert.Equal(period.Start.AddHours(12), period.ReportDate(TimeZoneInfo.FindSystemTimeZoneById("Etc/GMT+12")));
    }

    [Fact]
    public void West_of_utc_the_date_follows_daylight_saving()
    {
        var newYork = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");

        Assert.Equal(new DateTimeOffset(2026, 3, 1, 5, 0, 0, TimeSpan.Zero), BillingPeriod.Of(2026, 3).ReportDate(newYork));
        Assert.Equal(new DateTimeOffset(2026, 4, 1, 4, 0, 0, TimeSpan.Zero), BillingPeriod.Of(2026, 4).ReportDate(newYork));
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
