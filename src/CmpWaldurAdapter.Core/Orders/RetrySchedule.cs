namespace CmpWaldurAdapter.Core.Orders;

/// <summary>
/// Exponential backoff with bounded jitter, shared by the order inbox and the event reconnect loop:
/// attempt n waits min(initial × 2^n, max) plus up to <see cref="JitterFraction"/> of that.
/// </summary>
public sealed record RetrySchedule(TimeSpan Initial, TimeSpan Maximum, double JitterFraction = 0.25)
{
    public TimeSpan DelayFor(int attempt, double jitterSample)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(attempt);
        ArgumentOutOfRangeException.ThrowIfLessThan(jitterSample, 0d);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(jitterSample, 1d);
        // Cap the exponent first so large attempt counts cannot overflow.
        var exponent = Math.Min(attempt, 30);
        var baseTicks = Math.Min(Initial.Ticks * Math.Pow(2, exponent), Maximum.Ticks);
        return TimeSpan.FromTicks((long)(baseTicks * (1 + (JitterFraction * jitterSample))));
    }
}
