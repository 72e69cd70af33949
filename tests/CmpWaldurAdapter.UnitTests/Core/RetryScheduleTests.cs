using CmpWaldurAdapter.Core.Orders;

namespace CmpWaldurAdapter.UnitTests.Core;

public sealed class RetryScheduleTests
{
    private static readonly RetrySchedule Schedule = new(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(2));

    [Theory]
    [InlineData(0, 1)]
    [InlineData(1, 2)]
    [InlineData(3, 8)]
    [InlineData(6, 64)]
    [InlineData(7, 120)]
    [InlineData(1000, 120)]
    public void Delays_double_up_to_the_maximum(int attempt, double seconds)
    {
        Assert.Equal(TimeSpan.FromSeconds(seconds), Schedule.DelayFor(attempt, jitterSample: 0));
        Assert.Equal(TimeSpan.FromSeconds(seconds * 1.25), Schedule.DelayFor(attempt, jitterSample: 1));
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Schedule.DelayFor(-1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => Schedule.DelayFor(1, 1.5));
    }
}
