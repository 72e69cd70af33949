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
public sealed class UsageReportLease(DatabaseLeases leases, IOptionsMonitor<WaldurOptions> waldur, ILogger<UsageReportLease> logger)
{
    /// <summary>
    /// How long a report waits for another report of the same resource (held for moments) before it leaves the resource to
    /// the next run, the order's next attempt or the operator's next <c>usage report</c>.
    /// </summary>
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(3);

    /// <summary>
    /// The lease's length, renewed every third of it while a report holds it: a live holder keeps it however long its report
    /// takes, and a crashed one's frees after a minute. Each <c>set_usage</c> starts with at least two thirds of it ahead
    /// (<see cref="Holding.StillHeldAsync"/>), and the length is at least twice the one attempt of <c>set_usage</c> (cut off
    /// after <see cref="WaldurOptions.AttemptTimeout"/>, 30 s by default), so a send ends before the lease it was sent under
    /// can run out, even with no renewal during it.
    /// </summary>
    public TimeSpan Duration => TimeSpan.FromMinutes(1) > waldur.CurrentValue.AttemptTimeout * 2
        ? TimeSpan.FromMinutes(1)
        : waldur.CurrentValue.AttemptTimeout * 2;

    public static string Name(Guid resourceUuid) => $"usage-report:{resourceUuid:N}";

    /// <summary>A holding of one resource's lease, taken when the report first has something to send and given up on dispose.</summary>
    public Holding For(Guid resourceUuid) => new(this, resourceUuid);

    private async Task<DatabaseLeaseHolding?> TryTakeAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        var name = Name(resourceUuid);
        if (await leases.TryHoldAsync(name, Duration, cancellationToken) is { } holding)
        {
            return holding;
        }

        logger.LogInformation("Usage of resource {ResourceUuid} is being reported by another task (a run of another replica, a Terminate order's final report or usage report); waiting up to {Wait}",
            resourceUuid, Wait);
        return await leases.TryHoldAsync(name, Duration, Wait, cancellationToken);
    }

    public sealed class Holding(UsageReportLease lease, Guid resourceUuid) : IAsyncDisposable
    {
        private DatabaseLeaseHolding? _holding;
        private bool _tried;

        /// <summary>Takes the lease once (later calls answer the first one's outcome); false when another report kept it.</summary>
        public async Task<bool> TakeAsync(CancellationToken cancellationToken)
        {
            if (!_tried)
            {
                _holding = await lease.TryTakeAsync(resourceUuid, cancellationToken);
                _tried = true;
            }

            return _holding is not null;
        }

        /// <summary>
        /// Checked before each <c>set_usage</c>: true while the taken lease is still this report's, with at least two thirds of
        /// it ahead (renewed first unless taken or renewed within the last third: a send right after the take costs no
        /// statement); false once another report took it over (this one's renewals failed for a whole lease), which may be
        /// sending a newer total.
        /// </summary>
        public async Task<bool> StillHeldAsync(CancellationToken cancellationToken) =>
            _holding is { } holding && await holding.EnsureAheadAsync(cancellationToken);

        public async ValueTask DisposeAsync()
        {
            if (_holding is { } holding)
            {
                _holding = null;
                await holding.DisposeAsync();
            }
        }
    }
}
