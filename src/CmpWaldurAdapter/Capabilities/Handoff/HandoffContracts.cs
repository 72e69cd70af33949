using System.Text.Json.Serialization;
using CmpWaldurAdapter.Api;

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

/// <summary>One escalated conversation; <see cref="Id"/> (<c>esc_…</c>) is the list's paging cursor.</summary>
public sealed record EscalatedConversation(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("conversation")] string Conversation,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("unanswered")] int Unanswered,
    [property: JsonPropertyName("escalated_at")] DateTimeOffset EscalatedAt,
    [property: JsonPropertyName("webhook_delivered")] bool? WebhookDelivered,
    [property: JsonPropertyName("transcript")] IReadOnlyList<TranscriptTurn> Transcript);

/// <summary>A page of escalated conversations in OpenAI's list shape; first_id and last_id are null on an empty page.</summary>
public sealed record EscalatedConversationList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<EscalatedConversation> Data,
    [property: JsonPropertyName("first_id"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FirstId,
    [property: JsonPropertyName("last_id"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? LastId,
    [property: JsonPropertyName("has_more")] bool HasMore)
{
    public static EscalatedConversationList Of(ListPage<EscalatedConversation> page) =>
        new("list", page.Data, page.Data.Count > 0 ? page.Data[0].Id : null, page.Data.Count > 0 ? page.Data[^1].Id : null, page.HasMore);
}
