namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>A MESSAGE frame delivered to a subscription.</summary>
public sealed class StompMessage
{
    /// <exception cref="StompProtocolException">The frame is not a MESSAGE or lacks a header STOMP 1.2 requires.</exception>
    public StompMessage(StompFrame frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        if (!string.Equals(frame.Command, StompCommands.Message, StringComparison.Ordinal))
        {
            throw new StompProtocolException($"Expected a MESSAGE frame, got {frame.Command}.");
        }

        Frame = frame;
        Destination = Required(frame, StompHeaderNames.Destination);
        Subscription = Required(frame, StompHeaderNames.Subscription);
        MessageId = Required(frame, StompHeaderNames.MessageId);
        AckId = frame.GetHeader(StompHeaderNames.Ack);
        ContentType = frame.GetHeader(StompHeaderNames.ContentType);
    }

    public string Destination { get; }

    public string Subscription { get; }

    public string MessageId { get; }

    /// <summary>The <c>ack</c> header: present for <c>client</c> and <c>client-individual</c> subscriptions.</summary>
    public string? AckId { get; }

    public string? ContentType { get; }

    /// <summary>All headers in wire order, repeats included.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers => Frame.Headers;

    public ReadOnlyMemory<byte> Body => Frame.Body;

    public StompFrame Frame { get; }

    /// <summary>First value of the header, or null.</summary>
    public string? GetHeader(string name) => Frame.GetHeader(name);

    /// <summary>The body decoded as UTF-8 (invalid sequences become U+FFFD).</summary>
    public string GetBodyAsString() => Frame.GetBodyAsString();

    public override string ToString() => $"MESSAGE {MessageId} on {Destination} ({Body.Length} bytes)";

    private static string Required(StompFrame frame, string name) =>
        frame.GetHeader(name) ?? throw new StompProtocolException($"MESSAGE frame lacks the required '{name}' header.");
}
