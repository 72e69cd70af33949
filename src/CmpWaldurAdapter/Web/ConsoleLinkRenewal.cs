using System.Net;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// Keeps the console link in every active subscription's Waldur report alive: a link that expires within
/// <see cref="WebOptions.ConsoleLinkRenewBefore"/> is replaced by a fresh one of the version in force, so the buyer's
/// HomePort link never dies while the subscription lasts. Each renewal holds the report's lease
/// (<see cref="ReportLease"/>), so it never interleaves with an order's report or a replacement.
/// </summary>
public sealed class ConsoleLinkRenewal(
    IDbContextFactory<AdapterDbContext> dbs,
    ConsoleReportContributor report,
    ConsoleAccess console,
    ReportLease lease,
    IOptions<WebOptions> options,
    TimeProvider clock,
    ILogger<ConsoleLinkRenewal> logger)
{
    /// <summary>Links renewed per run at most (oldest first), so a first run after an upgrade does not flood Waldur.</summary>
    public const int Batch = 200;

    /// <summary>A resource Waldur refuses (gone, say) is tried again this much later, not at every run.</summary>
    public static readonly TimeSpan RefusedRetryDelay = TimeSpan.FromDays(1);

    /// <summary>The resource a run stopped at (Waldur down or refusing the adapter) is tried again this much later.</summary>
    public static readonly TimeSpan PausedRetryDelay = TimeSpan.FromHours(1);

    /// <summary>Renews the links due; returns how many were renewed.</summary>
    public async Task<int> RenewDueAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var legacyDue = now - options.Value.ConsoleLinkRenewalAge;
        List<(Guid Id, Guid ResourceUuid)> candidates;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            candidates = (await db.Subscriptions.AsNoTracking()
                .Where(s => s.State == SubscriptionState.Active)
                .Select(s => new
                {
                    s.Id,
                    s.ResourceUuid,
                    s.CreatedAt,
                    RenewAt = db.BuyerWebSettings.Where(w => w.SubscriptionId == s.Id).Select(w => w.ConsoleLinkRenewAt).FirstOrDefault(),
                })
                // Not recorded (a link made before this was kept): taken as made with the subscription, so renewed once to be sure.
                .Where(c => c.RenewAt != null ? c.RenewAt <= now : c.CreatedAt <= legacyDue)
                .OrderBy(c => c.RenewAt ?? c.CreatedAt)
                .Take(Batch)
                .ToListAsync(cancellationToken)).Select(c => (c.Id, c.ResourceUuid)).ToList();
        }

        var renewed = 0;
        foreach (var (id, resource) in candidates)
        {
            if (await lease.TryTakeAsync(resource, TimeSpan.Zero, cancellationToken) is not { } holding)
            {
                continue; // an order or a replacement is writing the report right now (with a fresh link); due again next run if not
            }

            try
            {
                if (await report.RenewAsync(id, resource, cancellationToken))
                {
                    renewed++;
                    logger.LogInformation("Console link of subscription {SubscriptionId} renewed in its Waldur report", id);
                }
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested
                && (UpstreamFailures.IsTransient(exception) || exception is Refit.ApiException { StatusCode: HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden }))
            {
                // Waldur is down or refuses the adapter: the run stops. This one resource goes an hour back in line, so one
                // that alone keeps failing cannot head every run and stop every renewal.
                logger.LogWarning("Renewing console links paused at subscription {SubscriptionId}: {Failure}; the next run goes on", id, UpstreamFailures.Describe(exception));
                await console.RenewLinkAtAsync(id, now + PausedRetryDelay, CancellationToken.None);
                break;
            }
            catch (Refit.ApiException exception) when (!cancellationToken.IsCancellationRequested)
            {
                // Waldur refuses this one resource (gone, say): tried again a day from now, so it does not head every run's batch.
                logger.LogWarning("Console link of subscription {SubscriptionId} not renewed: {Failure}", id, UpstreamFailures.Describe(exception));
                await console.RenewLinkAtAsync(id, now + RefusedRetryDelay, CancellationToken.None);
            }
            finally
            {
                await lease.ReleaseAsync(resource, holding);
            }
        }

        return renewed;
    }
}

/// <summary>The Quartz job that runs <see cref="ConsoleLinkRenewal.RenewDueAsync"/>.</summary>
[DisallowConcurrentExecution]
public sealed class RenewConsoleLinksJob(ConsoleLinkRenewal renewal) : IJob
{
    public static readonly JobKey Key = new("renew-console-links", "web");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await renewal.RenewDueAsync(cancellationToken);
}
