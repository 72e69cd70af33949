using CmpWaldurAdapter.Core.Subscriptions;

namespace CmpWaldurAdapter.Tenants;

/// <summary>
/// One Waldur marketplace resource: the buyer's agent. Its <see cref="Id"/> is the adapter's id, which
/// Waldur stores as the resource's <c>backend_id</c>.
/// </summary>
public sealed class Subscription
{
    /// <summary>Width of <see cref="Name"/>; Waldur allows 150.</summary>
    public const int MaxNameLength = 300;

    public Guid Id { get; set; }

    /// <summary>The Waldur marketplace resource UUID (unique: one subscription per resource).</summary>
    public Guid ResourceUuid { get; set; }

    public Guid OfferingUuid { get; set; }

    public Guid CustomerId { get; set; }

    /// <summary>The Waldur project UUID (the workspace).</summary>
    public Guid WorkspaceId { get; set; }

    public Guid? PlanUuid { get; set; }

    public string Name { get; set; } = string.Empty;

    public SubscriptionState State { get; set; }

    /// <summary>Waldur paused the resource (a budget policy or staff): not served, not charged.</summary>
    public bool Paused { get; set; }

    /// <summary>Waldur downscaled the resource: treated like paused.</summary>
    public bool Downscaled { get; set; }

    /// <summary>The buyer's validated settings (JSON object), from the order form and later changes.</summary>
    public string Configuration { get; set; } = "{}";

    public int ConfigurationVersion { get; set; }

    public string? LangflowProjectId { get; set; }

    public string? LangflowFlowId { get; set; }

    public string? RagflowDatasetId { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public DateTimeOffset? TerminatedAt { get; set; }

    public long Version { get; set; }

    /// <summary>Whether the agent may be served and charged right now.</summary>
    public bool IsServable => State == SubscriptionState.Active && !Paused && !Downscaled;
}
