using Quartz;

namespace CmpWaldurAdapter.Credits;

/// <summary>Releases holds nobody settled (a crashed or abandoned request), so they never pin credits.</summary>
[DisallowConcurrentExecution]
public sealed class ReleaseExpiredHoldsJob(CreditLedger ledger) : IJob
{
    public static readonly JobKey Key = new("release-expired-holds", "credits");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await ledger.ReleaseExpiredAsync(cancellationToken);
}
