using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class SpendAlertRulesTests
{
    [Theory]
    [InlineData(0, 100, new int[0])]
    [InlineData(49, 100, new int[0])]
    [InlineData(50, 100, new[] { 50 })]
    [InlineData(79, 100, new[] { 50 })]
    [InlineData(80, 100, new[] { 50, 80 })]
    [InlineData(100, 100, new[] { 50, 80, 100 })]
    [InlineData(250, 100, new[] { 50, 80, 100 })]
    [InlineData(5, 7, new[] { 50 })] // 80 % of 7 is 5.6: not reached at 5
    [InlineData(6, 7, new[] { 50, 80 })]
    [InlineData(800_000_000, SpendAlertRules.MaxAlertCredits, new[] { 50, 80 })]
    public void A_threshold_is_reached_at_its_share_of_the_amount_and_not_a_credit_before(long spent, long alert, int[] expected)
    {
        Assert.Equal(expected, SpendAlertRules.Reached(spent, alert));
    }

    [Fact]
    public void An_amount_below_one_credit_is_not_an_alert()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SpendAlertRules.Reached(10, 0));
    }
}
