using System.Net.WebSockets;

namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>Settings for one <see cref="StompConnection"/>. Settable so they bind from configuration.</summary>
public sealed class StompConnectOptions
{
    /// <summary>The <c>host</c> header: the broker's virtual host (RabbitMQ's default is "/").</summary>
    public string Host { get; set; } = "/";

    public string? Login { get; set; }

    /// <summary>Sent in CONNECT only; never logged.</summary>
    public string? Passcode { get; set; }

    /// <summary>cx: how often this client offers to send heart-beats. Zero: never.</summary>
    public TimeSpan HeartbeatSendInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>cy: how often this client wants heart-beats from the server. Zero: never.</summary>
    public TimeSpan HeartbeatReceiveInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The connection is declared dead after this many negotiated server intervals of silence (1–100).</summary>
    public double HeartbeatTolerance { get; set; } = 2.0;

    /// <summary>Covers the WebSocket handshake and the wait for CONNECTED.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long a frame that asked for a receipt waits for the RECEIPT.</summary>
    public TimeSpan ReceiptTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long DISCONNECT waits for its RECEIPT, and then for the close handshake.</summary>
    public TimeSpan DisconnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    public int MaxFrameHeaderBytes { get; set; } = StompFrameParser.DefaultMaxHeaderBytes;

    public int MaxFrameBodyBytes { get; set; } = StompFrameParser.DefaultMaxBodyBytes;

    public int ReceiveBufferSize { get; set; } = 16 * 1024;

    /// <summary>Hook for proxy, TLS or HTTP header settings of the underlying socket.</summary>
    public Action<ClientWebSocketOptions>? ConfigureWebSocket { get; set; }

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(Host, nameof(Host));
        ValidateInterval(HeartbeatSendInterval, nameof(HeartbeatSendInterval));
        ValidateInterval(HeartbeatReceiveInterval, nameof(HeartbeatReceiveInterval));
        if (!(HeartbeatTolerance is >= 1.0 and <= 100.0))
        {
            throw new ArgumentOutOfRangeException(nameof(HeartbeatTolerance), HeartbeatTolerance, "Must be between 1 and 100.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ConnectTimeout, TimeSpan.Zero, nameof(ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ReceiptTimeout, TimeSpan.Zero, nameof(ReceiptTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(DisconnectTimeout, TimeSpan.Zero, nameof(DisconnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxFrameHeaderBytes, 1024, nameof(MaxFrameHeaderBytes));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxFrameBodyBytes, nameof(MaxFrameBodyBytes));
        ArgumentOutOfRangeException.ThrowIfLessThan(ReceiveBufferSize, 256, nameof(ReceiveBufferSize));
    }

    private static void ValidateInterval(TimeSpan interval, string name)
    {
        if (interval < TimeSpan.Zero || interval.TotalMilliseconds > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(name, interval, "Must be zero (disabled) or a positive number of milliseconds.");
        }
    }
}
