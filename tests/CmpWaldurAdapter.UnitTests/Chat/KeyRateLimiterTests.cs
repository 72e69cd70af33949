using CmpWaldurAdapter.Chat;

namespace CmpWaldurAdapter.UnitTests.Chat;

public sealed class KeyRateLimiterTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(60)]
    [InlineData(61)]
    [InlineData(90)]
    [InlineData(100)]
    [InlineData(120)]
    [InlineData(150)]
    [InlineData(1_000)]
    [InlineData(999_999)]
    public void The_bucket_refills_exactly_the_configured_requests_a_minute_and_ticks_at_most_once_a_second_above_sixty(int perMinute)
    {
        var (tokens, period) = KeyRateLimiter.Replenishment(perMinute);

        Assert.Equal(perMinute, tokens * TimeSpan.FromMinutes(1) / period, precision: 6);
        Assert.True(tokens >= 1);
        if (perMinute > 60)
        {
            Assert.True(period >= TimeSpan.FromSeconds(1));
            Assert.Equal(0, period.Ticks % TimeSpan.TicksPerSecond);
        }
    }
}
