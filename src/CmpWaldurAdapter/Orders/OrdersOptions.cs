using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Orders;

/// <summary>How orders are found and retried (configuration section <c>Orders</c>).</summary>
public sealed class OrdersOptions : IValidatableObject
{
    public const string SectionName = "Orders";

    /// <summary>How often the inbox is checked when no event woke it.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan InboxCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Polling-only mode: how often all actionable orders are listed from Waldur.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>An order left in pending-provider or executing longer than this is fed to the inbox again.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan StuckAfter { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How often stuck orders are looked for.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan StuckCheckInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>First wait after a transient failure; later waits double up to <see cref="RetryMaximum"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan RetryInitial { get; set; } = TimeSpan.FromSeconds(5);

    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan RetryMaximum { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long one process may hold an order before another may take it over (a crashed holder).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Orders processed at the same time by one process. An order spends most of its time waiting for
    /// Waldur and the database, so more than the core count pays off (500 orders: 16 halves the time of 4);
    /// each holds at most two pooled connections.
    /// </summary>
    [Range(1, 64)]
    public int Concurrency { get; set; } = 16;

    /// <summary>
    /// Whether raw upstream error text goes into Waldur's error_message (visible to buyers). Off by default:
    /// buyers get a clear message and the order reference, operators get the details in logs.
    /// </summary>
    public bool ExposeErrorDetails { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // The backoff is capped at the maximum: one below the initial wait would silently replace it.
        if (RetryMaximum < RetryInitial)
        {
            yield return new ValidationResult("Orders:RetryMaximum must be at least Orders:RetryInitial.", [nameof(RetryMaximum), nameof(RetryInitial)]);
        }
    }
}
