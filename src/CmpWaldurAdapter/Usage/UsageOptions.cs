using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Usage;

/// <summary>Usage reporting to Waldur and the usage API (configuration section <c>Usage</c>).</summary>
public sealed class UsageOptions
{
    public const string SectionName = "Usage";

    /// <summary>How often month-to-date totals are compared with Waldur and sent where they differ.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Months each report covers: the current one and the ones before it (late settlements). At least 2: with only the
    /// current month, charges settled after a month's last report would never reach Waldur.
    /// </summary>
    [Range(2, 12)]
    public int ReportingPeriods { get; set; } = 2;

    /// <summary>Resources compared and sent at once: one at a time, 10,000 resources take minutes of round trips.</summary>
    [Range(1, 64)]
    public int Concurrency { get; set; } = 8;
}
