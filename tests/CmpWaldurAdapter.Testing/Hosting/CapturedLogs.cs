using System.Collections.Concurrent;
using Serilog.Core;
using Serilog.Events;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>Collects every log event a test host writes, rendered, so tests can read and scan them.</summary>
public sealed class CapturedLogs : ILogEventSink
{
    private readonly ConcurrentQueue<LogEvent> _events = new();

    public IReadOnlyList<LogEvent> Events => _events.ToList();

    public IEnumerable<string> Lines => _events.Select(e =>
        $"{e.Level} {e.RenderMessage()} {string.Join(' ', e.Properties.Select(p => $"{p.Key}={p.Value}"))} {e.Exception}");

    public void Emit(LogEvent logEvent) => _events.Enqueue(logEvent);
}
