using System.Globalization;

namespace CmpWaldurAdapter.Core.Credits;

/// <summary>
/// A calendar month in UTC: the unit Waldur bills usage in (one record per resource, component and
/// month, dated the first of the month; see <see cref="ReportDate"/>). Instants are always passed in, never read from a clock.
/// </summary>
public readonly record struct BillingPeriod : IComparable<BillingPeriod>
{
    private BillingPeriod(DateOnly firstDay) => FirstDay = firstDay;

    /// <summary>The first day of the month (Waldur's <c>billing_period</c>).</summary>
    public DateOnly FirstDay { get; }

    public int Year => FirstDay.Year;

    public int Month => FirstDay.Month;

    /// <summary>Midnight UTC on the first day.</summary>
    public DateTimeOffset Start => new(FirstDay.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);

    /// <summary>
    /// The <c>date</c> sent with <c>set_usage</c>: the earliest instant in this month both in UTC (the ledger's months) and
    /// in Waldur's time zone, where Waldur files a usage under the month its date falls in. In UTC and east of it that is
    /// <see cref="Start"/>; west of it, the 1st's local midnight (midnight UTC is the previous month's last evening there).
    /// </summary>
    public DateTimeOffset ReportDate(TimeZoneInfo waldurZone)
    {
        var startThere = StartIn(waldurZone);
        return startThere > Start ? startThere : Start;
    }

    /// <summary>The earliest instant whose local time in <paramref name="zone"/> is on or after the first day's midnight.</summary>
    public DateTimeOffset StartIn(TimeZoneInfo zone)
    {
        var midnight = FirstDay.ToDateTime(TimeOnly.MinValue);
        // Midnight less the offset in force a day before or a day after: when a daylight-saving change is near midnight
        // only one of them may land on or after it (the other falls in the skipped or repeated hour), and an ambiguous
        // midnight's first occurrence is the earlier.
        return new[] { Start.AddDays(-1), Start.AddDays(1) }
            .Select(around => new DateTimeOffset(midnight - zone.GetUtcOffset(around), TimeSpan.Zero))
            .Where(instant => TimeZoneInfo.ConvertTime(instant, zone).DateTime >= midnight)
            .Min();
    }

    /// <summary>Midnight UTC on the first day of the next month (exclusive end).</summary>
    public DateTimeOffset End => Next.Start;

    public BillingPeriod Previous => new(FirstDay.AddMonths(-1));

    public BillingPeriod Next => new(FirstDay.AddMonths(1));

    public static BillingPeriod Of(DateTimeOffset instant)
    {
        var utc = instant.UtcDateTime;
        return new BillingPeriod(new DateOnly(utc.Year, utc.Month, 1));
    }

    public static BillingPeriod Of(int year, int month) => new(new DateOnly(year, month, 1));

    /// <summary>The period a first-of-month date names; any other day is rejected.</summary>
    public static BillingPeriod FromFirstDay(DateOnly firstDay) =>
        firstDay.Day == 1 ? new BillingPeriod(firstDay) : throw new ArgumentException($"{firstDay:yyyy-MM-dd} is not the first day of a month.", nameof(firstDay));

    /// <summary>Parses <c>YYYY-MM</c> (the CLI's <c>--period</c> and the API's <c>period</c>).</summary>
    public static bool TryParse(string? text, out BillingPeriod period)
    {
        if (text is { Length: 7 } && DateOnly.TryParseExact(text + "-01", "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
        {
            period = new BillingPeriod(day);
            return true;
        }

        period = default;
        return false;
    }

    /// <summary>
    /// The periods a usage report covers at <paramref name="now"/>, oldest first: the current month and
    /// the <paramref name="count"/> − 1 before it (late settlements land in the month they occurred).
    /// </summary>
    public static IReadOnlyList<BillingPeriod> Reporting(DateTimeOffset now, int count = 2)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var current = Of(now);
        var periods = new BillingPeriod[count];
        for (var i = count - 1; i >= 0; i--)
        {
            periods[i] = current;
            current = current.Previous;
        }

        return periods;
    }

    public bool Contains(DateTimeOffset instant) => instant >= Start && instant < End;

    public int CompareTo(BillingPeriod other) => FirstDay.CompareTo(other.FirstDay);

    public static bool operator <(BillingPeriod left, BillingPeriod right) => left.CompareTo(right) < 0;

    public static bool operator >(BillingPeriod left, BillingPeriod right) => left.CompareTo(right) > 0;

    public static bool operator <=(BillingPeriod left, BillingPeriod right) => left.CompareTo(right) <= 0;

    public static bool operator >=(BillingPeriod left, BillingPeriod right) => left.CompareTo(right) >= 0;

    /// <summary><c>YYYY-MM</c>.</summary>
    public override string ToString() => FirstDay.ToString("yyyy-MM", CultureInfo.InvariantCulture);

    /// <summary><c>YYYY-MM-01</c>, as Waldur's <c>billing_period</c> filter takes it.</summary>
    public string ToWaldurDate() => FirstDay.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
}
