using System.Globalization;

namespace CmpWaldurAdapter.Core.Credits;

/// <summary>What Waldur should hold for one component of one resource in one month, and what it holds.</summary>
/// <param name="Ambiguous">Waldur holds several records for the component and month, so none can be trusted.</param>
public sealed record ComponentUsageComparison(string Component, decimal Ours, decimal? Waldur, bool Ambiguous = false)
{
    /// <summary>True when <c>set_usage</c> must send this component: the 2-decimal values differ (missing counts as 0).</summary>
    public bool Differs => Ambiguous || UsageAmounts.Round(Ours) != UsageAmounts.Round(Waldur ?? 0m);
}

/// <summary>Waldur usage amounts: decimal strings with at most two decimals; totals, never deltas.</summary>
public static class UsageAmounts
{
    public static decimal Round(decimal amount) => decimal.Round(amount, 2, MidpointRounding.AwayFromZero);

    /// <summary>The wire form <c>set_usage</c> takes: always two decimals, invariant culture ("12.00").</summary>
    public static string Format(decimal amount) => Round(amount).ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>
    /// What Waldur lacks of our total for a month it takes no more usage for (carried into a later month's total): ours
    /// less what it holds, never negative (a total Waldur holds above ours is not taken back from the next month).
    /// </summary>
    public static decimal Residue(ComponentUsageComparison comparison) => Math.Max(0m, Round(comparison.Ours) - Round(comparison.Waldur ?? 0m));

    /// <summary>
    /// Compares our month-to-date totals with Waldur's records for the same resource and month, over the
    /// given components (ours and Waldur's missing values count as 0). Several Waldur records for one
    /// component cannot be trusted to match anything, so that component is sent again.
    /// </summary>
    public static IReadOnlyList<ComponentUsageComparison> Compare(
        IEnumerable<string> components,
        IReadOnlyDictionary<string, decimal> ours,
        IEnumerable<(string Component, decimal Usage)> waldur)
    {
        var held = waldur.GroupBy(w => w.Component, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Select(w => w.Usage).ToList(), StringComparer.Ordinal);
        return components
            .Distinct(StringComparer.Ordinal)
            .Select(component =>
            {
                var mine = ours.TryGetValue(component, out var value) ? value : 0m;
                return held.TryGetValue(component, out var records)
                    ? new ComponentUsageComparison(component, mine, records[0], Ambiguous: records.Count > 1)
                    : new ComponentUsageComparison(component, mine, null);
            })
            .ToList();
    }
}
