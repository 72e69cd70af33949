using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>
/// One STOMP frame: a command, its headers in wire order (repeats kept) and a body.
/// Header lookups are case-sensitive and the first occurrence wins, as STOMP 1.2 requires.
/// </summary>
public sealed class StompFrame
{
    private static readonly KeyValuePair<string, string>[] NoHeaders = [];

    /// <summary>Creates a frame. The body is not copied: the caller must not mutate it afterwards.</summary>
    public StompFrame(string command, IEnumerable<KeyValuePair<string, string>>? headers = null, ReadOnlyMemory<byte> body = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        Command = command;
        Headers = headers is null ? NoHeaders : [.. headers];
        Body = body;
    }

    private StompFrame()
    {
        Command = string.Empty;
        Headers = NoHeaders;
    }

    /// <summary>The heart-beat pseudo-frame: a bare EOL on the wire.</summary>
    public static StompFrame Heartbeat { get; } = new();

    public bool IsHeartbeat => Command.Length == 0;

    public string Command { get; }

    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    public ReadOnlyMemory<byte> Body { get; }

    /// <summary>Value of the first header with this name, or null.</summary>
    public string? GetHeader(string name)
    {
        TryGetHeader(name, out var value);
        return value;
    }

    public bool TryGetHeader(string name, [NotNullWhen(true)] out string? value)
    {
        foreach (var header in Headers)
        {
            if (string.Equals(header.Key, name, StringComparison.Ordinal))
            {
                value = header.Value;
                return true;
            }
        }

        value = null;
        return false;
    }

    /// <summary>The body decoded as UTF-8 (invalid sequences become U+FFFD).</summary>
    public string GetBodyAsString() => Encoding.UTF8.GetString(Body.Span);

    // Header values are left out on purpose: CONNECT carries the passcode.
    public override string ToString() =>
        IsHeartbeat ? "<heart-beat>" : $"{Command} ({Headers.Count} headers, {Body.Length} body bytes)";
}
