namespace CmpWaldurAdapter.Capabilities;

/// <summary>Where a subscription's escalations are sent, and the (encrypted) secret they are signed with.</summary>
public sealed class HandoffWebhook
{
    public Guid SubscriptionId { get; set; }

    public string Url { get; set; } = string.Empty;

    /// <summary>The signing secret, encrypted with Data Protection; shown to the buyer once when created or rotated.</summary>
    public string SecretCipher { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>One conversation of a subscription with a handoff rule: its unanswered count, transcript and escalation.</summary>
public sealed class HandoffConversation
{
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    public string Conversation { get; set; } = string.Empty;

    public int Unanswered { get; set; }

    /// <summary>JSON array of {role, content, at}: what the person taking over reads.</summary>
    public string Transcript { get; set; } = "[]";

    public DateTimeOffset? EscalatedAt { get; set; }

    /// <summary>unanswered_questions or visitor_request.</summary>
    public string? EscalationReason { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public long Version { get; set; }
}

/// <summary>
/// The outbox of the subscription's webhook (the escalation webhook): each event persisted with what it announces,
/// delivered with backoff until the buyer's URL accepts it. Its id is the event's id.
/// </summary>
public sealed class HandoffDelivery
{
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    /// <summary>The escalated conversation; null for events about no conversation (a spend alert).</summary>
    public Guid? ConversationId { get; set; }

    public string Payload { get; set; } = string.Empty;

    public int Attempts { get; set; }

    public DateTimeOffset NextAttemptAt { get; set; }

    public DateTimeOffset? DeliveredAt { get; set; }

    public string? LastError { get; set; }

    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>One run of an automation offering's flow, triggered by the API or its schedule.</summary>
public sealed class AutomationRun
{
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    /// <summary>api or schedule.</summary>
    public string Trigger { get; set; } = string.Empty;

    /// <summary>running, succeeded or failed.</summary>
    public string Status { get; set; } = string.Empty;

    public string Input { get; set; } = "{}";

    public string? Output { get; set; }

    public string? Error { get; set; }

    public long CreditsCharged { get; set; }

    /// <summary>The schedule's firing time this run is for (unique per subscription, so a firing runs once across replicas).</summary>
    public DateTimeOffset? ScheduledFor { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? FinishedAt { get; set; }
}
