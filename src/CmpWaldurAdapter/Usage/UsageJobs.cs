using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using Microsoft.EntityFrameworkCore;
using Quartz;

namespace CmpWaldurAdapter.Usage;

/// <summary>The periodic usage report (clustered on PostgreSQL: one replica per firing).</summary>
[DisallowConcurrentExecution]
public sealed class ReportUsageJob(UsageReporter reporter) : IJob
{
    public static readonly JobKey Key = new("report-usage", "usage");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await reporter.ReportAsync(cancellationToken: cancellationToken);
}

/// <summary>
/// Adds the final usage report to every Terminate order, after the tenant is removed (its steps run
/// after the runtime provisioner's) and before the order is set done. A failure (Waldur unreachable after the
/// report's own retries, the month rolled over, or another report of the resource holding its lease) defers the order, so the report is retried with it. A previous month Waldur has
/// closed does not defer it: what Waldur lacks of it is carried into the current month's final total. A
/// total Waldur refuses otherwise does not hold the buyer's termination back for ever: the order completes,
/// its report names what was not taken, and the operator is told in an error log line.
/// </summary>
public sealed class FinalUsageReportProvisioner(UsageReporter reporter, IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock, ILogger<FinalUsageReportProvisioner> logger) : ITenantProvisioner
{
    public const string StepName = "report-final-usage";

    public IReadOnlyList<ProvisioningStep> StepsFor(OrderType type) =>
        type == OrderType.Terminate ? [new ProvisioningStep(StepName, ReportAsync)] : [];

    private async Task ReportAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        // Answers begun before the termination settle after it (a stream, a settle in the background): reported
        // before they are, their charges would never reach Waldur. No new ones start (the subscription is no longer
        // active), and a hold whose answer never settles expires, so this waits minutes at most. Parse holds are not
        // waited for: removing the knowledge base (an earlier step) charged the parses done and gave the rest back,
        // and one taken by an upload still under way then is never settled (no poll reads a deleted dataset).
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            var now = clock.GetUtcNow();
            var open = await db.CreditReservations.AsNoTracking()
                .CountAsync(r => r.SubscriptionId == context.Subscription.Id && r.ActionClass != ActionClass.RagDocument && r.ExpiresAt > now, cancellationToken);
            if (open > 0)
            {
                throw new TransientProvisioningException($"The final usage report waits for {open} answer(s) still being charged.");
            }
        }

        var rows = await reporter.ReportResourceAsync(context.Subscription.ResourceUuid, cancellationToken);
        // Skipped includes a current month Waldur has closed (east of UTC, the ledger's month's last hours): carried only
        // once the ledger's month ends, so the order waits for that, as it waits west of UTC for Waldur's month to begin.
        // Busy: another report of the resource kept its lease; the order's next attempt reports after it.
        if (rows.FirstOrDefault(r => r.Action is UsageAction.Failed or UsageAction.Skipped or UsageAction.Busy) is { } unfinished)
        {
            throw new TransientProvisioningException($"The final usage report did not reach Waldur ({unfinished.Detail}).");
        }

        var sent = rows.Where(r => r.Action == UsageAction.Posted).Select(Describe).ToList();
        if (sent.Count > 0)
        {
            context.Note("Final usage reported: " + string.Join(", ", sent) + ".");
        }

        var carried = rows.Where(r => r.Action == UsageAction.ClosedPeriod).ToList();
        if (carried.Count > 0)
        {
            context.Note("Usage of months Waldur has closed: " + string.Join(", ", carried.Select(r => $"{r.Component} ({r.Period}): {r.Detail}")) + ".");
        }

        var refused = rows.Where(r => r.Action == UsageAction.Refused).ToList();
        if (refused.Count > 0)
        {
            context.Note("Final usage Waldur did not accept (the provider will settle it): " + string.Join(", ", refused.Select(Describe)) + ".");
            logger.LogError("Waldur refused the final usage of terminated resource {ResourceUuid}: {Refused}; bill it by hand ({Reason})",
                context.Subscription.ResourceUuid, string.Join(", ", refused.Select(Describe)), refused[0].Detail);
        }
    }

    private static string Describe(UsageReportRow row) => $"{row.Component} {row.Ours:0.##} ({row.Period})";
}
