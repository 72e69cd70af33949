using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Reports;

/// <summary>
/// One writer of a resource's Waldur report at a time: orders (<see cref="SubscriptionReporter"/>), the console's
/// link replacement and its renewal each hold this lease while they build and submit the report, so none builds from
/// a state another is about to change (Waldur's submit replaces the whole report).
/// </summary>
public sealed class ReportLease(DatabaseLeases leases, IOptions<WaldurOptions> waldur)
{
    /// <summary>How long an order waits for another writer (they take moments) before it is retried later.</summary>
    public static readonly TimeSpan OrderWait = TimeSpan.FromSeconds(3);

    public static string Name(Guid resourceUuid) => $"waldur-report:{resourceUuid:N}";

    /// <summary>
    /// Longer than a write can take, so the lease never runs out under a live writer: a write makes two Waldur calls
    /// at most, each cut off after its attempts and backoff (as the client's resilience does), plus a minute. Frees a
    /// crashed writer's lease.
    /// </summary>
    public TimeSpan Duration => (LongestCall(waldur.Value) * 2) + TimeSpan.FromMinutes(1);

    /// <summary>The longest one Waldur call can take: every attempt cut off at its timeout, with the client's backoff between them.</summary>
    internal static TimeSpan LongestCall(WaldurOptions options) =>
        (options.AttemptTimeout * (options.RetryAttempts + 1)) + (options.RetryDelay * 60);

    /// <summary>Takes the lease, waiting up to <paramref name="wait"/>; the holding's token, or null when another kept it.</summary>
    public Task<string?> TryTakeAsync(Guid resourceUuid, TimeSpan wait, CancellationToken cancellationToken) =>
        leases.TryAcquireWaitingAsync(Name(resourceUuid), Duration, wait, cancellationToken);

    public Task ReleaseAsync(Guid resourceUuid, string holding) => leases.ReleaseAsync(Name(resourceUuid), holding);
}
