using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// Burst protection of the widget: a fixed one-minute window per visitor token. It is a rate limit, not an
/// allowance promised to anyone, so it stays in memory per replica (N replicas admit up to N times
/// <see cref="WebOptions.WidgetMessagesPerMinute"/> from one visitor); credits still bound what chat costs.
/// </summary>
public sealed class VisitorRateLimiter(IOptions<WebOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, (long Minute, int Count)> _windows = new(StringComparer.Ordinal);

    public bool TryAcquire(string visitor, out TimeSpan retryAfter)
    {
        var now = clock.GetUtcNow();
        var minute = now.ToUnixTimeSeconds() / 60;
        retryAfter = TimeSpan.FromSeconds(60 - (now.ToUnixTimeSeconds() % 60));
        if (_windows.Count > 50_000)
        {
            foreach (var (key, window) in _windows)
            {
                if (window.Minute < minute)
                {
                    _windows.TryRemove(key, out _);
                }
            }
        }

        var updated = _windows.AddOrUpdate(visitor, _ => (minute, 1), (_, window) => window.Minute == minute ? (minute, window.Count + 1) : (minute, 1));
        return updated.Count <= options.Value.WidgetMessagesPerMinute;
    }
}
