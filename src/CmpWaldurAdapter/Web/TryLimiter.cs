using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// The try page's allowance: <see cref="WebOptions.TryMessagesPerVisitor"/> per visitor (a signed cookie) and
/// <see cref="WebOptions.TryMessagesPerAddress"/> per network address, per offering, within
/// <see cref="WebOptions.TryWindow"/>. Counts live in memory: a restart forgives, and each replica counts its
/// own visitors (sticky sessions keep a visitor on one replica).
/// </summary>
public sealed class TryLimiter(IOptions<WebOptions> options, TimeProvider clock)
{
    private readonly ConcurrentDictionary<string, Window> _visitors = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Window> _addresses = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>Takes one message; false when the visitor or the address has none left. <paramref name="remaining"/> is what is left after it.</summary>
    public bool TryTake(string offering, string visitor, string address, out int remaining)
    {
        var now = clock.GetUtcNow();
        lock (_gate)
        {
            Prune(now);
            var byVisitor = Current(_visitors, offering + "|" + visitor, now);
            var byAddress = Current(_addresses, offering + "|" + address, now);
            if (byVisitor.Count >= options.Value.TryMessagesPerVisitor || byAddress.Count >= options.Value.TryMessagesPerAddress)
            {
                remaining = 0;
                return false;
            }

            byVisitor.Count++;
            byAddress.Count++;
            remaining = RemainingOf(byVisitor, byAddress);
            return true;
        }
    }

    /// <summary>Gives a message back (the demo agent failed to answer: a failure costs no allowance).</summary>
    public void GiveBack(string offering, string visitor, string address)
    {
        lock (_gate)
        {
            Decrement(_visitors, offering + "|" + visitor);
            Decrement(_addresses, offering + "|" + address);
        }
    }

    public int Remaining(string offering, string visitor, string address)
    {
        var now = clock.GetUtcNow();
        lock (_gate)
        {
            return RemainingOf(Current(_visitors, offering + "|" + visitor, now), Current(_addresses, offering + "|" + address, now));
        }
    }

    private int RemainingOf(Window visitor, Window address) =>
        Math.Max(0, Math.Min(options.Value.TryMessagesPerVisitor - visitor.Count, options.Value.TryMessagesPerAddress - address.Count));

    private Window Current(ConcurrentDictionary<string, Window> windows, string key, DateTimeOffset now)
    {
        if (!windows.TryGetValue(key, out var window) || now - window.Start >= options.Value.TryWindow)
        {
            window = new Window(now);
            windows[key] = window;
        }

        return window;
    }

    private static void Decrement(ConcurrentDictionary<string, Window> windows, string key)
    {
        if (windows.TryGetValue(key, out var window) && window.Count > 0)
        {
            window.Count--;
        }
    }

    private void Prune(DateTimeOffset now)
    {
        if (_visitors.Count + _addresses.Count < 50_000)
        {
            return;
        }

        foreach (var windows in new[] { _visitors, _addresses })
        {
            foreach (var (key, window) in windows)
            {
                if (now - window.Start >= options.Value.TryWindow)
                {
                    windows.TryRemove(key, out _);
                }
            }
        }
    }

    private sealed class Window(DateTimeOffset start)
    {
        public DateTimeOffset Start { get; } = start;

        public int Count { get; set; }
    }
}
