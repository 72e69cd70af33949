using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// One usage report of a resource at a time, across processes and replicas: the periodic run, a Terminate order's final
/// report and <c>usage report</c> each hold it from reading the ledger to Waldur's answer to <c>set_usage</c> (its retries
/// included), so a total read earlier never reaches Waldur after one read later (<c>set_usage</c> replaces the month's
/// value). Its own lease, not <see cref="Reports.ReportLease"/>: that one guards the resource's report page, whose
/// writers never report usage, and a holder of this one takes no other lease, so no holder ever waits on itself.
/// </summary>
public sealed class UsageReportLease(DatabaseLeases leases, IOptionsMonitor<WaldurOptions> waldur, IOptionsMonitor<UsageOptions> usage, ILogger<UsageReportLease> logger)
{
    /// <summary>
    /// How long a report waits for another report of the same resource (held for moments) before it leaves the resource to
    /// the next run, the order's next attempt or the operator's next <c>usage report</c>.
    /// </summary>
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(3);

    public static string Name(Guid resourceUuid) => $"usage-report:{resourceUuid:N}";

    /// <summary>
    /// Longer than a holder can take, so the lease never runs out under a live one: per reported month one read of Waldur
    /// and every attempt of <c>set_usage</c>, each cut off after its attempts and backoff (as the client's resilience does),
    /// the waits between the attempts, plus a minute. Frees a crashed holder's lease.
    /// </summary>
    public TimeSpan Duration
    {
        get
        {
            var call = Reports.ReportLease.LongestCall(waldur.CurrentValue);
            var month = (call * (1 + UsageSendRetries.Attempts)) + (UsageSendRetries.LongestRetryAfter * (UsageSendRetries.Attempts - 1));
            return (month * usage.CurrentValue.ReportingPeriods) + TimeSpan.FromMinutes(1);
        }
    }

    /// <summary>A holding of one resource's lease, taken when the report first has something to send and given up on dispose.</summary>
    public Holding For(Guid resourceUuid) => new(this, resourceUuid);

    private async Task<string?> TryTakeAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        var name = Name(resourceUuid);
        if (await leases.TryAcquireWaitingAsync(name, Duration, TimeSpan.Zero, cancellationToken) is { } holding)
        {
            return holding;
        }

        logger.LogInformation("Usage of resource {ResourceUuid} is being reported by another task (a run of another replica, a Terminate order's final report or usage report); waiting up to {Wait}",
            resourceUuid, Wait);
        return await leases.TryAcquireWaitingAsync(name, Duration, Wait, cancellationToken);
    }

    private Task ReleaseAsync(Guid resourceUuid, string holding) => leases.ReleaseAsync(Name(resourceUuid), holding);

    public sealed class Holding(UsageReportLease lease, Guid resourceUuid) : IAsyncDisposable
    {
        private string? _token;
        private bool _tried;

        /// <summary>Takes the lease once (later calls answer the first one's outcome); false when another report kept it.</summary>
        public async Task<bool> TakeAsync(CancellationToken cancellationToken)
        {
            if (!_tried)
            {
                _token = await lease.TryTakeAsync(resourceUuid, cancellationToken);
                _tried = true;
            }

            return _token is not null;
        }

        public async ValueTask DisposeAsync()
        {
            if (_token is { } token)
            {
                _token = null;
                await lease.ReleaseAsync(resourceUuid, token);
            }
        }
    }
}
