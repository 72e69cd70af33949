using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Chat;

/// <summary>Limits of the chat API (configuration section <c>Chat</c>).</summary>
public sealed class ChatOptions : IValidatableObject
{
    public const string SectionName = "Chat";

    /// <summary>Longest accepted user message, in characters.</summary>
    [Range(1, 1_000_000)]
    public int MaxMessageChars { get; set; } = 8_000;

    /// <summary>
    /// Most characters of the request's own <c>system</c>/<c>developer</c> messages together. A message is one flat
    /// price, so what the model reads per message is bounded: by this, the user message, the history and the context.
    /// </summary>
    [Range(1, 1_000_000)]
    public int MaxInstructionChars { get; set; } = 16_000;

    /// <summary>Largest <c>max_tokens</c>/<c>max_completion_tokens</c> a request may ask for (the answer's length, paid by one flat price).</summary>
    [Range(1, 1_000_000)]
    public int MaxCompletionTokens { get; set; } = 16_384;

    /// <summary>Most messages in one request (the history the client sends).</summary>
    [Range(1, 10_000)]
    public int MaxMessages { get; set; } = 200;

    /// <summary>Largest accepted request body.</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxBodyBytes { get; set; } = 512 * 1024;

    /// <summary>Requests per minute per API key (a token bucket; bursts up to the same number).</summary>
    [Range(1, 1_000_000)]
    public int RequestsPerMinute { get; set; } = 120;

    /// <summary>How long an Idempotency-Key's answer is kept and replayed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan IdempotencyWindow { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Passages retrieved from the knowledge base per message.</summary>
    [Range(1, 100)]
    public int RetrievalChunks { get; set; } = 6;

    /// <summary>Most characters of retrieved passages put into the prompt.</summary>
    [Range(100, 1_000_000)]
    public int MaxContextChars { get; set; } = 6_000;

    /// <summary>
    /// Most characters of the earlier turns a client sends in <c>messages</c> that are given to the agent (newest
    /// first kept) when the request names no conversation with <c>X-Conversation-Id</c>: a client that keeps its own
    /// history, as OpenAI clients do, has the agent see it. 0: never.
    /// </summary>
    [Range(0, 1_000_000)]
    public int MaxHistoryChars { get; set; } = 8_000;

    /// <summary>How long one agent run may take before the request fails with 504-like 503.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan RunTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// A stream that has sent nothing for this long sends an SSE comment (<c>: keepalive</c>), which clients ignore,
    /// so proxies and load balancers with idle timeouts keep it open while an agent thinks. Before the agent's first
    /// piece that commits the 200; a failure that quick (most outages) is still a plain 502/503.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "01:00:00")]
    public TimeSpan StreamKeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // A retry past the window names a new request, with a new hold: while the first may still be running (its run
        // and what runs around it) that would run and charge the same message twice.
        if (IdempotencyWindow < RunTimeout + IdempotencyStore.AbandonMargin)
        {
            yield return new ValidationResult(
                $"Chat:IdempotencyWindow must be at least Chat:RunTimeout plus {IdempotencyStore.AbandonMargin.TotalMinutes:0} minutes ({RunTimeout + IdempotencyStore.AbandonMargin}), the longest a request with an Idempotency-Key may still be running.",
                [nameof(IdempotencyWindow), nameof(RunTimeout)]);
        }
    }
}
