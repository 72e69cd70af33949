using System.Globalization;
using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class UsageAmountsTests
{
    private static readonly string[] Components = ["chat_credits", "rag_credits"];

    [Theory]
    [InlineData("0", "0.00")]
    [InlineData("12", "12.00")]
    [InlineData("12.345", "12.35")]
    [InlineData("12.344", "12.34")]
    [InlineData("1000000", "1000000.00")]
    public void Amounts_are_sent_with_exactly_two_decimals(string amount, string wire)
    {
        Assert.Equal(wire, UsageAmounts.Format(decimal.Parse(amount, System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Equal_totals_are_not_sent_again()
    {
        var result = UsageAmounts.Compare(Components, Ours(("chat_credits", 6m), ("rag_credits", 5m)), [("chat_credits", 6m), ("rag_credits", 5m)]);

        Assert.All(result, c => Assert.False(c.Differs));
    }

    [Fact]
    public void Only_the_components_that_differ_are_sent()
    {
        var result = UsageAmounts.Compare(Components, Ours(("chat_credits", 8m), ("rag_credits", 5m)), [("chat_credits", 6m), ("rag_credits", 5m)]);

        var changed = Assert.Single(result, c => c.Differs);
        Assert.Equal(("chat_credits", 8m, 6m), (changed.Component, changed.Ours, changed.Waldur!.Value));
    }

    [Fact]
    public void Missing_on_either_side_counts_as_zero()
    {
        var result = UsageAmounts.Compare(Components, Ours(("chat_credits", 2m)), []);

        Assert.True(result.Single(c => c.Component == "chat_credits").Differs);
        Assert.False(result.Single(c => c.Component == "rag_credits").Differs);
        Assert.True(UsageAmounts.Compare(Components, Ours(), [("rag_credits", 5m)]).Single(c => c.Component == "rag_credits").Differs);
    }

    [Fact]
    public void Sub_cent_differences_are_not_differences()
    {
        var result = UsageAmounts.Compare(Components, Ours(("chat_credits", 6.001m)), [("chat_credits", 6.00m)]);

        Assert.All(result, c => Assert.False(c.Differs));
    }

    [Fact]
    public void Several_waldur_records_for_one_component_are_overwritten_and_unknown_components_ignored()
    {
        var result = UsageAmounts.Compare(Components, Ours(("chat_credits", 6m)), [("chat_credits", 6m), ("chat_credits", 1m), ("gpu_hours", 3m)]);

        Assert.True(result.Single(c => c.Component == "chat_credits").Differs);
        Assert.DoesNotContain(result, c => c.Component == "gpu_hours");
    }

    [Theory]
    [InlineData("8", "6.00", "2.00")] // the charges a closed month's last report missed
    [InlineData("5", null, "5.00")] // a component Waldur never got for that month
    [InlineData("4", "9.00", "0.00")] // Waldur holds more: nothing is taken back from the next month
    [InlineData("4", "4.00", "0.00")]
    [InlineData("6.5", "2.25", "4.25")] // an earlier carry in our total, a 2-decimal total in Waldur's
    public void The_residue_of_a_closed_month_is_what_waldur_lacks_of_ours_never_negative(string ours, string? waldur, string residue)
    {
        var comparison = new ComponentUsageComparison("chat_credits", decimal.Parse(ours, CultureInfo.InvariantCulture),
            waldur is null ? null : decimal.Parse(waldur, CultureInfo.InvariantCulture));

        Assert.Equal(residue, UsageAmounts.Format(UsageAmounts.Residue(comparison)));
    }

    private static Dictionary<string, decimal> Ours(params (string Component, decimal Credits)[] totals) =>
        totals.ToDictionary(t => t.Component, t => t.Credits);
}
