using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class CreditRulesTests
{
    [Theory]
    [InlineData(10, null, 10)]
    [InlineData(10, 7L, 7)]
    [InlineData(10, 0L, 0)]
    [InlineData(10, 10L, 10)]
    public void A_hold_settles_for_the_actual_amount_up_to_what_it_held(long held, long? actual, long settled)
    {
        Assert.Equal(settled, CreditRules.SettledAmount(held, actual));
    }

    [Theory]
    [InlineData(11L)]
    [InlineData(-1L)]
    public void A_hold_never_settles_for_more_than_it_held_or_less_than_nothing(long actual)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreditRules.SettledAmount(10, actual));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-3)]
    [InlineData(CreditRules.MaxAmount + 1)]
    public void Charges_and_grants_are_positive_and_bounded(long credits)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreditRules.RequirePositive(credits));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(CreditRules.MaxAmount + 1)]
    public void Prices_are_bounded_and_never_negative(long credits)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => CreditRules.RequirePrice(credits));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(CreditRules.MaxAmount)]
    public void A_price_may_be_free_or_as_large_as_any_charge(long credits)
    {
        Assert.Equal(credits, CreditRules.RequirePrice(credits));
    }

    [Fact]
    public void A_request_id_is_required_and_short()
    {
        Assert.Equal("req-1", CreditRules.RequireRequestId("req-1"));
        Assert.Throws<ArgumentException>(() => CreditRules.RequireRequestId(" "));
        Assert.Throws<ArgumentException>(() => CreditRules.RequireRequestId(new string('x', CreditRules.MaxRequestIdLength + 1)));
    }

    [Fact]
    public void Available_credits_are_the_balance_minus_holds_never_shown_below_zero()
    {
        Assert.Equal(7, CreditRules.Available(10, 3));
        Assert.Equal(0, CreditRules.Available(2, 3));
    }
}
