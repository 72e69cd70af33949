using Refit;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// How a <c>set_usage</c> that failed for the moment (5xx, 408, 429, a timeout, the network) is tried again within the
/// same run, the resource's <see cref="UsageReportLease"/> still held. The HTTP client never repeats <c>set_usage</c>
/// itself: before each attempt the reporter reads the ledger and Waldur again, so a retry sends the total as it is then,
/// never the failed attempt's copy.
/// </summary>
public sealed class UsageSendRetries(TimeProvider clock)
{
    /// <summary>The waits before the second and the third attempt.</summary>
    public static readonly IReadOnlyList<TimeSpan> Backoff = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(4)];

    /// <summary>The longest Retry-After waited for: Waldur asking for longer leaves the total to the next run (the lease is held meanwhile).</summary>
    public static readonly TimeSpan LongestRetryAfter = TimeSpan.FromSeconds(10);

    public static int Attempts => Backoff.Count + 1;

    /// <summary>Waits out a delay; tests replace it so that no test sleeps.</summary>
    public Func<TimeSpan, CancellationToken, Task> WaitAsync { get; init; } = (delay, cancellationToken) => Task.Delay(delay, clock, cancellationToken);

    /// <summary>
    /// The wait before the attempt after <paramref name="attempt"/> failed with <paramref name="failure"/>: the backoff, or
    /// Waldur's Retry-After when longer; null when no attempt is left or Waldur asks for more than <see cref="LongestRetryAfter"/>.
    /// </summary>
    public TimeSpan? DelayAfter(int attempt, Exception failure)
    {
        if (attempt >= Attempts)
        {
            return null;
        }

        var backoff = Backoff[attempt - 1];
        if (failure is ApiException { Headers.RetryAfter: { } asked })
        {
            var wait = asked.Delta ?? (asked.Date is { } date ? date - clock.GetUtcNow() : TimeSpan.Zero);
            if (wait > LongestRetryAfter)
            {
                return null;
            }

            return wait > backoff ? wait : backoff;
        }

        return backoff;
    }
}
