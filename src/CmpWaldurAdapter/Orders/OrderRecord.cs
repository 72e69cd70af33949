using CmpWaldurAdapter.Core.Orders;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// The adapter's progress on one Waldur order. Every completed phase and provisioning step is saved
/// here, so a crash resumes at the next step; the lease makes sure one process works on an order at a time.
/// </summary>
public sealed class OrderRecord
{
    /// <summary>Width of <see cref="LastError"/>.</summary>
    public const int MaxErrorLength = 2000;

    public Guid OrderUuid { get; set; }

    public OrderType Type { get; set; }

    public Guid ResourceUuid { get; set; }

    public Guid OfferingUuid { get; set; }

    public Guid? SubscriptionId { get; set; }

    public OrderPhase Phase { get; set; }

    /// <summary>Names of the provisioning steps already completed, in order, separated by commas.</summary>
    public string CompletedSteps { get; set; } = string.Empty;

    public int Attempts { get; set; }

    /// <summary>Buyer-facing report lines written by the steps (one per line), kept so a resumed order reports them.</summary>
    public string Notes { get; set; } = string.Empty;

    public string? LastError { get; set; }

    public string? LeaseOwner { get; set; }

    public DateTimeOffset? LeaseExpiresAt { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public DateTimeOffset? CompletedAt { get; set; }

    public IReadOnlyList<string> Steps => CompletedSteps.Length == 0 ? [] : CompletedSteps.Split(',');

    public bool HasCompleted(string step) => Steps.Contains(step, StringComparer.Ordinal);

    public void MarkCompleted(string step)
    {
        if (!HasCompleted(step))
        {
            CompletedSteps = CompletedSteps.Length == 0 ? step : $"{CompletedSteps},{step}";
        }
    }
}

/// <summary>Where the adapter is with an order. Each phase is persisted before the next begins.</summary>
public enum OrderPhase
{
    /// <summary>Seen, nothing done yet.</summary>
    Received,

    /// <summary>Approved by the provider (the adapter); provisioning may start.</summary>
    Approved,

    /// <summary>All provisioning steps done.</summary>
    Provisioned,

    /// <summary>The report was submitted to Waldur.</summary>
    Reported,

    /// <summary>Waldur has the order as done.</summary>
    Completed,

    /// <summary>Rejected for invalid input.</summary>
    Rejected,

    /// <summary>Marked erred after a permanent failure.</summary>
    Erred,

    /// <summary>Nothing for the adapter to do (another party's turn, or already final).</summary>
    Skipped,
}
