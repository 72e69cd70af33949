using System.Text.Json.Serialization;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Credits.SpendAlerts;

/// <summary>
/// One threshold of a subscription's monthly spend alert, reached and announced: at most one per subscription,
/// month and threshold (a unique index), so replicas racing to record it record one.
/// </summary>
public sealed class SpendAlert
{
    /// <summary>Also the id of its webhook delivery and event, when a webhook was set.</summary>
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    /// <summary>First day of the UTC month whose charges reached the threshold.</summary>
    public DateOnly Period { get; set; }

    /// <summary>50, 80 or 100.</summary>
    public int ThresholdPercent { get; set; }

    /// <summary>The buyer's monthly amount when the threshold was reached (it may change later in the month).</summary>
    public long AlertCredits { get; set; }

    /// <summary>Credits charged to the subscription in the month when the check saw the threshold reached.</summary>
    public long SpentCredits { get; set; }

    public DateTimeOffset DetectedAt { get; set; }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<SpendAlert>(alert =>
        {
            alert.ToTable("spend_alerts");
            alert.HasKey(a => a.Id);
            alert.Property(a => a.Id).ValueGeneratedNever();
            alert.HasIndex(a => new { a.SubscriptionId, a.Period, a.ThresholdPercent }).IsUnique();
            alert.HasOne<Tenants.Subscription>().WithMany().HasForeignKey(a => a.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
        });
}

/// <summary>The webhook event of a reached threshold, sent through the escalation webhook's outbox.</summary>
public sealed record SpendThresholdEvent(
    [property: JsonPropertyName("id")] Guid Id,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("subscription")] Guid Subscription,
    [property: JsonPropertyName("period")] string Period,
    [property: JsonPropertyName("threshold_percent")] int ThresholdPercent,
    [property: JsonPropertyName("alert_credits")] long AlertCredits,
    [property: JsonPropertyName("spent_credits")] long SpentCredits,
    [property: JsonPropertyName("detected_at")] DateTimeOffset DetectedAt,
    [property: JsonPropertyName("link")] string Link)
{
    public const string EventType = "spend.threshold_reached";
}

/// <summary>An alert as the console lists it; <see cref="WebhookDelivered"/> is null when no webhook was set.</summary>
public sealed record SpendAlertView(int ThresholdPercent, long AlertCredits, long SpentCredits, DateTimeOffset DetectedAt, bool? WebhookDelivered);
