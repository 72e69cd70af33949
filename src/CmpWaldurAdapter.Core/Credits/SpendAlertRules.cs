namespace CmpWaldurAdapter.Core.Credits;

/// <summary>
/// A subscription's monthly spend alert: the buyer's amount of credits and the shares of it that are announced
/// once a month each. Alerts only tell; nothing is refused because of them.
/// </summary>
public static class SpendAlertRules
{
    public const long MaxAlertCredits = 1_000_000_000;

    /// <summary>The shares of the amount announced, in percent, lowest first.</summary>
    public static readonly IReadOnlyList<int> ThresholdPercents = [50, 80, 100];

    /// <summary>The thresholds <paramref name="spent"/> credits have reached (a threshold is reached at its exact share too).</summary>
    public static IReadOnlyList<int> Reached(long spent, long alertCredits)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(alertCredits, 1);
        // Whole-number comparison: 80 % of 7 credits is reached at 5.6, so at 6, never at 5.
        return ThresholdPercents.Where(percent => (decimal)spent * 100 >= (decimal)alertCredits * percent).ToList();
    }
}
