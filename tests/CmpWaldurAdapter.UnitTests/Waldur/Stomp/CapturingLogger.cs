using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

/// <summary>Keeps every formatted log line (and exception text) so tests can check what was logged.</summary>
public sealed class CapturingLogger<T> : ILogger<T>
{
    private readonly List<string> _lines = [];

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var line = $"{logLevel}: {formatter(state, exception)} {exception}";
        if (state is IEnumerable<KeyValuePair<string, object?>> values)
        {
            line += " | " + string.Join(", ", values.Select(v => $"{v.Key}={v.Value}"));
        }

        lock (_lines)
        {
            _lines.Add(line);
        }
    }
}
