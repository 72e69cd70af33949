using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

public sealed class StompReconnectBackoffTests
{
    private static readonly double[] ExpectedSeconds = [1, 2, 4, 8, 16, 32, 64, 120, 120, 120];

    [Fact]
    public void Without_jitter_delays_double_from_one_second_up_to_120_seconds()
    {
        var backoff = new StompReconnectBackoff(jitterSource: () => 0.0);

        var delays = ExpectedSeconds.Select(_ => backoff.NextDelay().TotalSeconds).ToArray();

        Assert.Equal(ExpectedSeconds, delays);
        Assert.Equal(ExpectedSeconds.Length, backoff.Attempt);
    }

    [Fact]
    public void With_maximal_jitter_each_delay_is_at_most_25_percent_longer()
    {
        var backoff = new StompReconnectBackoff(jitterSource: () => 0.999999);

        foreach (var expected in ExpectedSeconds)
        {
            var delay = backoff.NextDelay().TotalSeconds;
            Assert.InRange(delay, expected * 1.2499, expected * 1.25);
        }
    }

    [Fact]
    public void Random_jitter_stays_within_zero_to_25_percent_and_actually_varies()
    {
        var random = new Random(12345);
        var ratios = new List<double>();
        for (var run = 0; run < 200; run++)
        {
            var backoff = new StompReconnectBackoff(jitterSource: random.NextDouble);
            foreach (var expected in ExpectedSeconds)
            {
                ratios.Add(backoff.NextDelay().TotalSeconds / expected);
            }
        }

        Assert.All(ratios, ratio => Assert.InRange(ratio, 1.0, 1.25));
        Assert.True(ratios.Max() - ratios.Min() > 0.2, "jitter should spread delays across most of the 25 % band");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(7.5)]
    [InlineData(-3.0)]
    [InlineData(double.NaN)]
    public void A_misbehaving_jitter_source_cannot_push_the_delay_outside_the_band(double jitter)
    {
        var backoff = new StompReconnectBackoff(jitterSource: () => jitter);

        var delay = backoff.NextDelay().TotalSeconds;

        Assert.InRange(delay, 1.0, 1.25);
    }

    [Fact]
    public void Many_failures_never_overflow_and_stay_at_the_maximum()
    {
        var backoff = new StompReconnectBackoff(jitterSource: () => 0.0);

        for (var i = 0; i < 200; i++)
        {
            backoff.NextDelay();
        }

        Assert.Equal(TimeSpan.FromSeconds(120), backoff.NextDelay());
    }

    [Fact]
    public void A_connection_that_stayed_up_for_the_stable_period_resets_the_delay()
    {
        var time = new FakeTimeProvider();
        var backoff = new StompReconnectBackoff(
            new StompReconnectBackoffOptions { StablePeriod = TimeSpan.FromSeconds(60) }, time, () => 0.0);
        backoff.NextDelay();
        backoff.NextDelay();
        Assert.Equal(TimeSpan.FromSeconds(4), backoff.NextDelay());

        backoff.MarkConnected();
        time.Advance(TimeSpan.FromSeconds(60));

        Assert.Equal(TimeSpan.FromSeconds(1), backoff.NextDelay());
        Assert.Equal(TimeSpan.FromSeconds(2), backoff.NextDelay());
    }

    [Fact]
    public void A_connection_that_failed_before_the_stable_period_keeps_backing_off()
    {
        // The reconnect-storm case: CONNECT succeeds, then the session dies at once, every time.
        var time = new FakeTimeProvider();
        var backoff = new StompReconnectBackoff(
            new StompReconnectBackoffOptions { StablePeriod = TimeSpan.FromSeconds(60) }, time, () => 0.0);

        var delays = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            backoff.MarkConnected();
            time.Advance(TimeSpan.FromSeconds(59));
            delays.Add(backoff.NextDelay().TotalSeconds);
        }

        Assert.Equal([1, 2, 4, 8, 16], delays);
    }

    [Fact]
    public void A_stable_mark_is_used_once()
    {
        var time = new FakeTimeProvider();
        var backoff = new StompReconnectBackoff(
            new StompReconnectBackoffOptions { StablePeriod = TimeSpan.FromSeconds(10) }, time, () => 0.0);
        backoff.NextDelay();
        backoff.MarkConnected();
        time.Advance(TimeSpan.FromSeconds(30));

        Assert.Equal(TimeSpan.FromSeconds(1), backoff.NextDelay());
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Equal(TimeSpan.FromSeconds(2), backoff.NextDelay());
    }

    [Fact]
    public void Reset_starts_over()
    {
        var backoff = new StompReconnectBackoff(jitterSource: () => 0.0);
        backoff.NextDelay();
        backoff.NextDelay();

        backoff.Reset();

        Assert.Equal(0, backoff.Attempt);
        Assert.Equal(TimeSpan.FromSeconds(1), backoff.NextDelay());
    }

    [Fact]
    public async Task DelayAsync_waits_on_the_injected_clock()
    {
        var time = new FakeTimeProvider();
        var backoff = new StompReconnectBackoff(timeProvider: time, jitterSource: () => 0.0);
        backoff.NextDelay();

        var waiting = backoff.DelayAsync();
        time.Advance(TimeSpan.FromSeconds(1.9));
        Assert.False(waiting.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(0.1));

        Assert.Equal(TimeSpan.FromSeconds(2), await waiting.WaitAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            new StompReconnectBackoff(new StompReconnectBackoffOptions { MaxJitter = 1.5 }));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            new StompReconnectBackoff(new StompReconnectBackoffOptions { InitialDelay = TimeSpan.Zero }));
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            new StompReconnectBackoff(new StompReconnectBackoffOptions { MaxDelay = TimeSpan.FromMilliseconds(10) }));
    }
}
