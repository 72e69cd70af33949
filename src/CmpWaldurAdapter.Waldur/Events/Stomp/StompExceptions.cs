using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>Base type for STOMP failures; a consumer loop reconnects on any of them.</summary>
public class StompException : Exception
{
    public StompException()
    {
    }

    public StompException(string message)
        : base(message)
    {
    }

    public StompException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Bytes on the wire that are not a valid STOMP 1.2 frame.</summary>
public sealed class StompProtocolException : StompException
{
    public StompProtocolException()
    {
    }

    public StompProtocolException(string message)
        : base(message)
    {
    }

    public StompProtocolException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The server sent an ERROR frame; per spec it closes the connection afterwards.</summary>
public sealed class StompServerErrorException : StompException
{
    private const int MaxDetailsInMessage = 1024;

    public StompServerErrorException()
    {
    }

    public StompServerErrorException(string message)
        : base(message)
    {
    }

    public StompServerErrorException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public StompServerErrorException(StompFrame errorFrame)
        : this(errorFrame, secret: null)
    {
    }

    private StompServerErrorException(StompFrame errorFrame, string? secret)
        : base(Redact(Describe(errorFrame), secret))
    {
        ServerMessage = Redact(errorFrame.GetHeader(StompHeaderNames.Message), secret);
        ServerDetails = errorFrame.Body.IsEmpty ? null : Redact(errorFrame.GetBodyAsString(), secret);
        ReceiptId = errorFrame.GetHeader(StompHeaderNames.ReceiptId);
        Headers = errorFrame.Headers;
    }

    /// <summary>The ERROR frame's <c>message</c> header.</summary>
    public string? ServerMessage { get; }

    /// <summary>The ERROR frame's body as text, if any.</summary>
    public string? ServerDetails { get; }

    /// <summary>The receipt id of the client frame that caused the error, if the server named one.</summary>
    public string? ReceiptId { get; }

    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; } = [];

    /// <summary>
    /// Builds the exception with every occurrence of <paramref name="secret"/> masked: some brokers
    /// echo the offending frame in the ERROR body, and this message ends up in logs.
    /// </summary>
    public static StompServerErrorException FromFrame(StompFrame errorFrame, string? secret) => new(errorFrame, secret);

    [return: NotNullIfNotNull(nameof(text))]
    private static string? Redact(string? text, string? secret) =>
        text is null || string.IsNullOrEmpty(secret) ? text : text.Replace(secret, "***", StringComparison.Ordinal);

    private static string Describe(StompFrame frame)
    {
        var text = new StringBuilder("STOMP server sent ERROR: ");
        text.Append(frame.GetHeader(StompHeaderNames.Message) ?? "(no message header)");
        if (!frame.Body.IsEmpty)
        {
            var details = frame.GetBodyAsString().Trim();
            if (details.Length > MaxDetailsInMessage)
            {
                details = string.Concat(details.AsSpan(0, MaxDetailsInMessage), "…");
            }

            text.Append(" - ").Append(details);
        }

        return text.ToString();
    }
}

/// <summary>Why a STOMP connection stopped being usable.</summary>
public enum StompConnectionLostReason
{
    /// <summary>The WebSocket failed: refused, reset, aborted or a send/receive error.</summary>
    TransportError,

    /// <summary>The server closed the WebSocket without being asked to.</summary>
    ClosedByServer,

    /// <summary>Nothing arrived from the server within the heart-beat tolerance.</summary>
    HeartbeatTimeout,

    /// <summary>The server sent bytes that are not valid STOMP.</summary>
    ProtocolError,

    /// <summary>The server sent an ERROR frame earlier.</summary>
    ServerError,

    /// <summary>This client disconnected or was disposed.</summary>
    ClosedLocally,
}

/// <summary>The connection is torn: the message stream ends with this, and the caller reconnects.</summary>
public sealed class StompConnectionLostException : StompException
{
    public StompConnectionLostException()
    {
    }

    public StompConnectionLostException(string message)
        : base(message)
    {
    }

    public StompConnectionLostException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public StompConnectionLostException(string message, StompConnectionLostReason reason, Exception? innerException = null)
        : base(message, innerException)
    {
        Reason = reason;
    }

    public StompConnectionLostReason Reason { get; }
}
