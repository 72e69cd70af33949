using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat;

/// <summary>
/// A token bucket per API key (or per widget visitor): bursts up to the per-minute allowance, refilled
/// continuously. Held in memory per replica, so with N replicas a key gets up to N times the rate.
/// </summary>
public sealed class KeyRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;

    public KeyRateLimiter(IOptions<ChatOptions> options)
    {
        var perMinute = options.Value.RequestsPerMinute;
        _limiter = PartitionedRateLimiter.Create<string, string>(partition => RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perMinute,
            TokensPerPeriod = Math.Max(1, perMinute / 60),
            ReplenishmentPeriod = TimeSpan.FromSeconds(Math.Max(1, 60.0 / perMinute * Math.Max(1, perMinute / 60))),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>Takes one request's token; when none is left, says how long until one is.</summary>
    public bool TryAcquire(string partition, out TimeSpan retryAfter)
    {
        using var lease = _limiter.AttemptAcquire(partition);
        if (lease.IsAcquired)
        {
            retryAfter = TimeSpan.Zero;
            return true;
        }

        retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        return false;
    }

    public void Dispose() => _limiter.Dispose();
}
