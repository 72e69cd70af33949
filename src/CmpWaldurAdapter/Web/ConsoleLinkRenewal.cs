using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// Keeps the console link in every active subscription's Waldur report alive: a link that expires within
/// <see cref="WebOptions.ConsoleLinkRenewBefore"/> is replaced by a fresh one of the same version, so the buyer's
/// HomePort link never dies while the subscription lasts. A subscription with an order in progress is left to that
/// order's own report.
/// </summary>
public sealed class ConsoleLinkRenewal(
    IDbContextFactory<AdapterDbContext> dbs,
    ConsoleReportContributor report,
    ConsoleAccess console,
    IOptions<WebOptions> options,
    TimeProvider clock,
    ILogger<ConsoleLinkRenewal> logger)
{
    /// <summary>Links renewed per run at most (oldest first), so a first run after an upgrade does not flood Waldur.</summary>
    public const int Batch = 200;

    /// <summary>Renews the links due; returns how many were renewed.</summary>
    public async Task<int> RenewDueAsync(CancellationToken cancellationToken)
    {
        var web = options.Value;
        var renewBefore = TimeSpan.FromTicks(Math.Min(web.ConsoleLinkRenewBefore.Ticks, web.ConsoleLinkLifetime.Ticks / 2));
        var due = clock.GetUtcNow() - (web.ConsoleLinkLifetime - renewBefore);
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var candidates = await db.Subscriptions.AsNoTracking()
            .Where(s => s.State == SubscriptionState.Active && !db.Orders.Any(o => o.SubscriptionId == s.Id
                && o.Phase != OrderPhase.Completed && o.Phase != OrderPhase.Erred && o.Phase != OrderPhase.Rejected && o.Phase != OrderPhase.Skipped))
            // Not recorded (a link made before this was kept): as old as the subscription, so renewed once to be sure.
            .Select(s => new
            {
                s.Id,
                s.ResourceUuid,
                IssuedAt = db.BuyerWebSettings.Where(w => w.SubscriptionId == s.Id).Select(w => w.ConsoleLinkIssuedAt).FirstOrDefault() ?? s.CreatedAt,
            })
            .Where(c => c.IssuedAt <= due)
            .OrderBy(c => c.IssuedAt)
            .Take(Batch)
            .ToListAsync(cancellationToken);

        var renewed = 0;
        foreach (var candidate in candidates)
        {
            try
            {
                await report.RenewAsync(candidate.Id, candidate.ResourceUuid, cancellationToken);
                renewed++;
                logger.LogInformation("Console link of subscription {SubscriptionId} renewed in its Waldur report", candidate.Id);
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested && UpstreamFailures.IsTransient(exception))
            {
                logger.LogWarning("Renewing console links paused: Waldur did not answer ({Failure}); the next run goes on", UpstreamFailures.Describe(exception));
                break;
            }
            catch (Refit.ApiException exception) when (!cancellationToken.IsCancellationRequested)
            {
                // Waldur refuses this resource (gone, say): counted as renewed now, so it is tried again only a renewal period
                // later and does not head every run's batch.
                logger.LogWarning("Console link of subscription {SubscriptionId} not renewed: {Failure}", candidate.Id, UpstreamFailures.Describe(exception));
                await console.RecordIssuedAsync(candidate.Id, clock.GetUtcNow(), cancellationToken);
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
