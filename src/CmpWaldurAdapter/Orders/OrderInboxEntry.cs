namespace CmpWaldurAdapter.Orders;

/// <summary>
/// An order that needs a look, as announced by an event, a poll or an operator. Unique per order and
/// state, so duplicate messages, replicas, and a poll racing an event all collapse into one row.
/// </summary>
public sealed class OrderInboxEntry
{
    public long Id { get; set; }

    public Guid OrderUuid { get; set; }

    /// <summary>The order state the announcement carried (Waldur spelling), or "unknown" for polls without one.</summary>
    public string OrderState { get; set; } = string.Empty;

    /// <summary>Who announced it: event, poll, refeed, cli.</summary>
    public string Source { get; set; } = string.Empty;

    public InboxStatus Status { get; set; }

    public int Attempts { get; set; }

    public DateTimeOffset ReceivedAt { get; set; }

    public DateTimeOffset NextAttemptAt { get; set; }

    public DateTimeOffset? CompletedAt { get; set; }

    public string? LastError { get; set; }
}

public enum InboxStatus
{
    Pending,
    Done,
}
