using System.Globalization;
using System.Threading.RateLimiting;
using CmpWaldurAdapter.Api;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat;

/// <summary>
/// A token bucket per API key (or per widget visitor): bursts up to the per-minute allowance, refilled
/// continuously. Held in memory per replica, so with N replicas a key gets up to N times the rate.
/// </summary>
public sealed class KeyRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;
    private readonly int _perMinute;

    public KeyRateLimiter(IOptions<ChatOptions> options)
    {
        var perMinute = _perMinute = options.Value.RequestsPerMinute;
        var (tokens, period) = Replenishment(perMinute);
        _limiter = PartitionedRateLimiter.Create<string, string>(partition => RateLimitPartition.GetTokenBucketLimiter(partition, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perMinute,
            TokensPerPeriod = tokens,
            ReplenishmentPeriod = period,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>
    /// Refills that add up to exactly <paramref name="perMinute"/> a minute: one token every 60/n seconds up to 60 a
    /// minute; above, the smallest whole number of tokens every whole number of seconds (90 a minute: 3 every 2 s),
    /// so no timer ticks faster than once a second.
    /// </summary>
    internal static (int Tokens, TimeSpan Period) Replenishment(int perMinute)
    {
        if (perMinute <= 60)
        {
            return (1, TimeSpan.FromMinutes(1) / perMinute);
        }

        var shared = (int)System.Numerics.BigInteger.GreatestCommonDivisor(perMinute, 60);
        return (perMinute / shared, TimeSpan.FromSeconds(60 / shared));
    }

    /// <summary>Takes one request's token; when none is left, says how long until one is.</summary>
    private bool TryAcquire(string partition, out TimeSpan retryAfter)
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

    /// <summary>
    /// Takes one request's token for an API key and tells the client where it stands in OpenAI's headers
    /// (<c>x-ratelimit-limit-requests</c>, <c>-remaining-requests</c>, <c>-reset-requests</c>: until the bucket is
    /// full again), which clients use to pace themselves; null when admitted, else the 429 with Retry-After.
    /// </summary>
    public IResult? Admit(HttpContext http, string partition)
    {
        var admitted = TryAcquire(partition, out var retryAfter);
        var remaining = Math.Clamp(_limiter.GetStatistics(partition)?.CurrentAvailablePermits ?? 0, 0, _perMinute);
        var headers = http.Response.Headers;
        headers["x-ratelimit-limit-requests"] = _perMinute.ToString(CultureInfo.InvariantCulture);
        headers["x-ratelimit-remaining-requests"] = remaining.ToString(CultureInfo.InvariantCulture);
        headers["x-ratelimit-reset-requests"] = $"{Math.Ceiling((_perMinute - remaining) * 60.0 / _perMinute).ToString(CultureInfo.InvariantCulture)}s";
        if (admitted)
        {
            return null;
        }

        return ApiErrors.TooManyRequests(retryAfter, seconds => $"Rate limit of {_perMinute} requests per minute for this key reached; retry in {seconds} s.");
    }

    public void Dispose() => _limiter.Dispose();
}
