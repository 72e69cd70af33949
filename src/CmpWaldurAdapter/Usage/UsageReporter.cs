using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Usage;

/// <summary>What happened to one component of one resource in one month.</summary>
public enum UsageAction
{
    /// <summary>Waldur already holds the month-to-date total: nothing sent.</summary>
    Unchanged,

    /// <summary>Sent with <c>set_usage</c>.</summary>
    Posted,

    /// <summary>Differs, but this was a dry run.</summary>
    WouldPost,

    /// <summary>Not sent: the month rolled over during the run (sent next run).</summary>
    Skipped,

    /// <summary>Waldur failed; retried next run (the total is recomputed from the ledger, so nothing is lost).</summary>
    Failed,
}

public sealed record UsageReportRow(Guid ResourceUuid, Guid? SubscriptionId, string Period, string Component, decimal Ours, decimal? Waldur, UsageAction Action, string? Detail = null);

public sealed record UsageReport(IReadOnlyList<UsageReportRow> Rows, bool DryRun)
{
    public int Posted => Rows.Count(r => r.Action == UsageAction.Posted);

    /// <summary>True when something could not be sent (failed or skipped) and waits for the next run.</summary>
    public bool Unfinished => Rows.Any(r => r.Action is UsageAction.Failed or UsageAction.Skipped);
}

/// <summary>
/// Reports credits to Waldur as usage: for each resource, the month-to-date total per component for
/// the current and previous month (from settled charges), compared with what Waldur holds for that
/// billing period; <c>set_usage</c> is called only with the components that differ, dated the first
/// of the month, amounts with two decimals. Like the site agent, a resource is skipped when the month
/// rolls over during the run. Terminated subscriptions are reported for every month they have usage in.
/// </summary>
public sealed class UsageReporter(
    IWaldurApi waldur,
    IDbContextFactory<AdapterDbContext> dbs,
    PriceBooks priceBooks,
    TimeProvider clock,
    IOptionsMonitor<UsageOptions> options,
    IOptionsMonitor<WaldurOptions> waldurOptions,
    ILogger<UsageReporter> logger,
    Observability.AdapterMetrics metrics)
{
    /// <summary>Reports every resource with usage in the periods (the current and previous month, or <paramref name="period"/>).</summary>
    public async Task<UsageReport> ReportAsync(BillingPeriod? period = null, bool dryRun = false, CancellationToken cancellationToken = default)
    {
        var periods = Periods(period);
        IReadOnlyList<Guid> resources;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            resources = await UsageTotals.ResourcesWithUsageAsync(db, periods, cancellationToken);
        }

        var monthAtStart = BillingPeriod.Of(clock.GetUtcNow());
        var ordered = resources.Order().ToList();
        // Resources are independent (each its own context and Waldur calls): several at once, rows kept in resource order.
        var perResource = new IReadOnlyList<UsageReportRow>[ordered.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, ordered.Count),
            new ParallelOptions { MaxDegreeOfParallelism = options.CurrentValue.Concurrency, CancellationToken = cancellationToken },
            async (index, token) => perResource[index] = await ReportResourceAsync(ordered[index], periods, dryRun, monthAtStart, token));
        var rows = perResource.SelectMany(r => r).ToList();

        var report = new UsageReport(rows, dryRun);
        logger.LogInformation("Usage report{DryRun}: {Resources} resource(s), {Posted} component total(s) sent, {Unchanged} unchanged, {Failed} failed, {Skipped} skipped",
            dryRun ? " (dry run)" : string.Empty, resources.Count, report.Posted,
            rows.Count(r => r.Action == UsageAction.Unchanged), rows.Count(r => r.Action == UsageAction.Failed), rows.Count(r => r.Action == UsageAction.Skipped));
        return report;
    }

    /// <summary>Reports one resource now (the final report of a Terminate order).</summary>
    public Task<IReadOnlyList<UsageReportRow>> ReportResourceAsync(Guid resourceUuid, CancellationToken cancellationToken) =>
        ReportResourceAsync(resourceUuid, Periods(null), dryRun: false, BillingPeriod.Of(clock.GetUtcNow()), cancellationToken);

    private IReadOnlyList<BillingPeriod> Periods(BillingPeriod? period) =>
        period is { } only ? [only] : BillingPeriod.Reporting(clock.GetUtcNow(), options.CurrentValue.ReportingPeriods);

    private async Task<IReadOnlyList<UsageReportRow>> ReportResourceAsync(Guid resourceUuid, IReadOnlyList<BillingPeriod> periods, bool dryRun, BillingPeriod monthAtStart, CancellationToken cancellationToken)
    {
        var rows = new List<UsageReportRow>();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.ResourceUuid == resourceUuid)
            .Select(s => new { s.Id, s.OfferingUuid })
            .FirstOrDefaultAsync(cancellationToken);
        var offered = subscription is null ? [] : Components(subscription.OfferingUuid);

        foreach (var period in periods)
        {
            var ours = await UsageTotals.ForResourceAsync(db, resourceUuid, period, cancellationToken);
            if (ours.Count == 0)
            {
                // Never charged in this month: nothing was ever sent, so there is nothing to correct.
                continue;
            }

            var components = offered.Count > 0 ? offered : ours.Keys.Order(StringComparer.Ordinal).ToList();
            foreach (var stray in ours.Keys.Except(components, StringComparer.Ordinal))
            {
                logger.LogWarning("Resource {ResourceUuid} has {Component} charges in {Period}, but its offering has no such component; not reported", resourceUuid, stray, period);
            }

            IReadOnlyList<ComponentUsageComparison> comparisons;
            try
            {
                var held = await WaldurUsagesAsync(resourceUuid, period, cancellationToken);
                comparisons = UsageAmounts.Compare(components, ours, held.Where(h => h.Type is not null).Select(h => (h.Type!, h.Usage)));
            }
            catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken))
            {
                rows.AddRange(components.Select(c => Row(resourceUuid, subscription?.Id, period, c, ours, null, UsageAction.Failed, UpstreamFailures.Describe(exception))));
                logger.LogWarning("Could not read Waldur's usage of resource {ResourceUuid} for {Period}: {Reason}; retried next run", resourceUuid, period, UpstreamFailures.Describe(exception));
                continue;
            }

            var changed = comparisons.Where(c => c.Differs).ToList();
            rows.AddRange(comparisons.Where(c => !c.Differs).Select(c => new UsageReportRow(resourceUuid, subscription?.Id, period.ToString(), c.Component, c.Ours, c.Waldur, UsageAction.Unchanged)));
            if (changed.Count == 0)
            {
                continue;
            }

            if (dryRun)
            {
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscription?.Id, period, c, UsageAction.WouldPost)));
                continue;
            }

            if (BillingPeriod.Of(clock.GetUtcNow()) != monthAtStart)
            {
                // The site agent's month-boundary guard: the next run reports with the new month's periods.
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscription?.Id, period, c, UsageAction.Skipped, "the month rolled over during the run")));
                logger.LogInformation("Month rolled over while reporting resource {ResourceUuid}; it is reported next run", resourceUuid);
                break;
            }

            foreach (var decrease in changed.Where(c => c.Waldur is { } w && c.Ours < w))
            {
                logger.LogWarning("Waldur holds {Waldur} {Component} for resource {ResourceUuid} in {Period}, more than the ledger's {Ours}; sending the ledger's total",
                    decrease.Waldur, decrease.Component, resourceUuid, period, decrease.Ours);
            }

            try
            {
                await waldur.SetUsageAsync(new ComponentUsageCreateRequest
                {
                    Resource = resourceUuid,
                    Date = period.Start,
                    Usages = changed.Select(c => new ComponentUsageItemRequest { Type = c.Component, Amount = UsageAmounts.Format(c.Ours) }).ToList(),
                }, cancellationToken);
                metrics.UsageReportsSent.Inc();
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscription?.Id, period, c, UsageAction.Posted)));
            }
            catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken))
            {
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscription?.Id, period, c, UsageAction.Failed, UpstreamFailures.Describe(exception))));
                logger.LogWarning("Waldur did not take the usage of resource {ResourceUuid} for {Period}: {Reason}; retried next run", resourceUuid, period, UpstreamFailures.Describe(exception));
            }
        }

        return rows;
    }

    private IReadOnlyList<string> Components(Guid offeringUuid)
    {
        try
        {
            return priceBooks.ComponentsOf(offeringUuid);
        }
        catch (Catalogue.CatalogueException exception)
        {
            logger.LogWarning("The catalogue cannot be read ({Reason}); reporting the components found in the ledger", exception.Message);
            return [];
        }
    }

    private async Task<List<ComponentUsageRecord>> WaldurUsagesAsync(Guid resourceUuid, BillingPeriod period, CancellationToken cancellationToken)
    {
        var pageSize = waldurOptions.CurrentValue.PageSize;
        var records = new List<ComponentUsageRecord>();
        for (var page = 1; ; page++)
        {
            var batch = await waldur.ListComponentUsagesAsync(resourceUuid, period.ToWaldurDate(), page, pageSize, cancellationToken);
            // Waldur filters by billing period; the check guards against a server that ignores the filter.
            records.AddRange(batch.Where(r => r.BillingPeriod is null || r.BillingPeriod == period.FirstDay));
            if (batch.Count < pageSize)
            {
                return records;
            }
        }
    }

    private static bool IsWaldurFailure(Exception exception, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && (UpstreamFailures.IsTransient(exception) || exception is Refit.ApiException);

    private static UsageReportRow Row(Guid resource, Guid? subscription, BillingPeriod period, string component, IReadOnlyDictionary<string, decimal> ours, decimal? waldur, UsageAction action, string? detail) =>
        new(resource, subscription, period.ToString(), component, ours.TryGetValue(component, out var value) ? value : 0m, waldur, action, detail);

    private static UsageReportRow Compared(Guid resource, Guid? subscription, BillingPeriod period, ComponentUsageComparison comparison, UsageAction action, string? detail = null) =>
        new(resource, subscription, period.ToString(), comparison.Component, comparison.Ours, comparison.Waldur, action, detail);
}
