using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>Human handoff (configuration section <c>Handoff</c>).</summary>
public sealed class HandoffOptions : IValidatableObject
{
    public const string SectionName = "Handoff";

    /// <summary>How often the outbox of escalation webhooks is delivered.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan DeliveryInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The first retry's delay; each further failure doubles it up to <see cref="MaxRetryDelay"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan FirstRetryDelay { get; set; } = TimeSpan.FromSeconds(30);

    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long one delivery may take before it counts as failed.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan DeliveryTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Webhooks may go to this machine's own addresses and over plain http: for development and tests only. Otherwise a
    /// webhook must be an https address whose host resolves to public internet addresses only (no SSRF into the network).
    /// </summary>
    public bool AllowLoopbackWebhooks { get; set; }

    /// <summary>Turns kept in a conversation's transcript (the newest).</summary>
    [Range(2, 1000)]
    public int TranscriptTurns { get; set; } = 50;

    /// <summary>
    /// How long a conversation's handoff record (its count, transcript and escalation, with its webhook event) is kept after
    /// its last message; then the purge job deletes it. A record whose event is still to be delivered is kept until it is.
    /// At least a day, so a conversation paused overnight keeps its count.
    /// </summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan ConversationRetention { get; set; } = TimeSpan.FromDays(90);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // The backoff is capped at the maximum: one below the first delay would silently replace it.
        if (MaxRetryDelay < FirstRetryDelay)
        {
            yield return new ValidationResult("Handoff:MaxRetryDelay must be at least Handoff:FirstRetryDelay.", [nameof(MaxRetryDelay), nameof(FirstRetryDelay)]);
        }
    }
}
