using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>The <c>handoff</c> extension field of a chat completion: the conversation was handed to a person.</summary>
public sealed record HandoffNotice(
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("escalated_at")] DateTimeOffset EscalatedAt);

public sealed record TranscriptTurn(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string Content,
    [property: JsonPropertyName("at")] DateTimeOffset At);

/// <summary>The body of the escalation webhook.</summary>
public sealed record EscalationEvent(
    [property: JsonPropertyName("id")] Guid Id,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("subscription")] Guid Subscription,
    [property: JsonPropertyName("conversation")] string Conversation,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("unanswered")] int Unanswered,
    [property: JsonPropertyName("escalated_at")] DateTimeOffset EscalatedAt,
    [property: JsonPropertyName("link")] string Link,
    [property: JsonPropertyName("transcript")] IReadOnlyList<TranscriptTurn> Transcript);

public sealed class WebhookRequest
{
    [JsonPropertyName("url")]
    public string? Url { get; set; }
}

/// <summary>The webhook's settings; <see cref="Secret"/> only in the answer that created or rotated it.</summary>
public sealed record WebhookSettings(
    [property: JsonPropertyName("url")] string Url,
    [property: JsonPropertyName("secret")] string? Secret,
    [property: JsonPropertyName("updated_at")] DateTimeOffset UpdatedAt);

public sealed record EscalatedConversation(
    [property: JsonPropertyName("conversation")] string Conversation,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("unanswered")] int Unanswered,
    [property: JsonPropertyName("escalated_at")] DateTimeOffset EscalatedAt,
    [property: JsonPropertyName("webhook_delivered")] bool? WebhookDelivered,
    [property: JsonPropertyName("transcript")] IReadOnlyList<TranscriptTurn> Transcript);

public sealed record EscalatedConversationList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<EscalatedConversation> Data);
