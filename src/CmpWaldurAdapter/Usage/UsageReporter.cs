using System.Globalization;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Refit;

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

    /// <summary>
    /// Not sent: the month rolled over during the run, or, with Waldur west of UTC, the new month has begun in UTC but
    /// not yet in Waldur's time zone (<see cref="BillingPeriod.ReportDate"/>); sent by the first run after that.
    /// </summary>
    Skipped,

    /// <summary>Waldur failed; retried next run (the total is recomputed from the ledger, so nothing is lost).</summary>
    Failed,

    /// <summary>
    /// Waldur refused the total (a 4xx other than 401, 403, 408 and 429: say, a component it does not know, or a
    /// past month it takes no more usage for). Tried again next run, but retrying the same request will not change
    /// the answer: an operator has to look.
    /// </summary>
    Refused,
}

public sealed record UsageReportRow(Guid ResourceUuid, Guid? SubscriptionId, string Period, string Component, decimal Ours, decimal? Waldur, UsageAction Action, string? Detail = null);

public sealed record UsageReport(IReadOnlyList<UsageReportRow> Rows, bool DryRun)
{
    public int Posted => Rows.Count(r => r.Action == UsageAction.Posted);

    /// <summary>True when something could not be sent (failed, refused or skipped) and waits for the next run.</summary>
    public bool Unfinished => Rows.Any(r => r.Action is UsageAction.Failed or UsageAction.Refused or UsageAction.Skipped);
}

/// <summary>
/// Reports credits to Waldur as usage: for each resource, the month-to-date total per component for
/// the current and previous month (from settled charges), compared with what Waldur holds for that
/// billing period; <c>set_usage</c> is called only with the components that differ, dated the first
/// instant of the month in UTC and in Waldur's time zone (<see cref="BillingPeriod.ReportDate"/>), amounts with two decimals. Like the
/// site agent, a resource is skipped when the month rolls over during the run. Terminated subscriptions are reported for every month they have usage in.
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
    /// <summary>
    /// Reports every resource with usage in the periods (the current and previous month, or <paramref name="period"/>).
    /// Both sides are read in bulk: the ledger's totals in one grouped query per month, Waldur's usages in
    /// pages per offering and month; only the differences cost a call each (several at once).
    /// </summary>
    public async Task<UsageReport> ReportAsync(BillingPeriod? period = null, bool dryRun = false, CancellationToken cancellationToken = default)
    {
        var periods = Periods(period);
        var monthAtStart = BillingPeriod.Of(clock.GetUtcNow());
        var ours = new Dictionary<BillingPeriod, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, decimal>>>();
        Dictionary<Guid, (Guid Id, Guid OfferingUuid)> subscriptions;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            foreach (var month in periods)
            {
                ours[month] = await UsageTotals.ForPeriodAsync(db, month, cancellationToken);
            }

            var charged = ours.Values.SelectMany(t => t.Keys).Distinct().ToList();
            subscriptions = (await db.Subscriptions.AsNoTracking()
                    .Where(s => charged.Contains(s.ResourceUuid))
                    .Select(s => new { s.ResourceUuid, s.Id, s.OfferingUuid })
                    .ToListAsync(cancellationToken))
                .GroupBy(s => s.ResourceUuid)
                .ToDictionary(g => g.Key, g => (g.First().Id, g.First().OfferingUuid));
        }

        var resources = ours.Values.SelectMany(t => t.Keys).Distinct().Order().ToList();
        var held = await OfferingUsagesAsync(resources, subscriptions, periods, ours, cancellationToken);
        var components = subscriptions.Values.Select(s => s.OfferingUuid).Distinct().ToDictionary(o => o, Components);

        // Resources are independent: several at once, rows kept in resource order.
        var perResource = new IReadOnlyList<UsageReportRow>[resources.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, resources.Count),
            new ParallelOptions { MaxDegreeOfParallelism = options.CurrentValue.Concurrency, CancellationToken = cancellationToken },
            async (index, token) =>
            {
                var resource = resources[index];
                var subscription = subscriptions.TryGetValue(resource, out var found) ? found : ((Guid Id, Guid OfferingUuid)?)null;
                perResource[index] = await ReportResourceAsync(
                    resource,
                    subscription?.Id,
                    subscription is { } known ? components[known.OfferingUuid] : [],
                    periods,
                    (month, _) => Task.FromResult(ours[month].TryGetValue(resource, out var totals) ? totals : EmptyTotals),
                    (month, innerToken) => subscription is { } known && held.TryGetValue((known.OfferingUuid, month), out var offering)
                        ? Task.FromResult(offering.For(resource))
                        : ResourceUsagesAsync(resource, month, innerToken),
                    dryRun,
                    monthAtStart,
                    token,
                    async (month, innerToken) =>
                    {
                        await using var fresh = await dbs.CreateDbContextAsync(innerToken);
                        return await UsageTotals.ForResourceAsync(fresh, resource, month, innerToken);
                    });
            });
        var rows = perResource.SelectMany(r => r).ToList();

        var report = new UsageReport(rows, dryRun);
        logger.LogInformation("Usage report{DryRun}: {Resources} resource(s), {Posted} component total(s) sent, {Unchanged} unchanged, {Failed} failed, {Refused} refused, {Skipped} skipped",
            dryRun ? " (dry run)" : string.Empty, resources.Count, report.Posted,
            rows.Count(r => r.Action == UsageAction.Unchanged), rows.Count(r => r.Action == UsageAction.Failed), rows.Count(r => r.Action == UsageAction.Refused), rows.Count(r => r.Action == UsageAction.Skipped));
        return report;
    }

    /// <summary>Reports one resource now (the final report of a Terminate order): its own queries and Waldur reads only.</summary>
    public async Task<IReadOnlyList<UsageReportRow>> ReportResourceAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.ResourceUuid == resourceUuid)
            .Select(s => new { s.Id, s.OfferingUuid })
            .FirstOrDefaultAsync(cancellationToken);
        return await ReportResourceAsync(
            resourceUuid,
            subscription?.Id,
            subscription is null ? [] : Components(subscription.OfferingUuid),
            Periods(null),
            async (month, token) => await UsageTotals.ForResourceAsync(db, resourceUuid, month, token),
            (month, token) => ResourceUsagesAsync(resourceUuid, month, token),
            dryRun: false,
            BillingPeriod.Of(clock.GetUtcNow()),
            cancellationToken);
    }

    private static readonly IReadOnlyDictionary<string, decimal> EmptyTotals = new Dictionary<string, decimal>(StringComparer.Ordinal);

    private IReadOnlyList<BillingPeriod> Periods(BillingPeriod? period) =>
        period is { } only ? [only] : BillingPeriod.Reporting(clock.GetUtcNow(), options.CurrentValue.ReportingPeriods);

    private async Task<IReadOnlyList<UsageReportRow>> ReportResourceAsync(
        Guid resourceUuid,
        Guid? subscriptionId,
        IReadOnlyList<string> offered,
        IReadOnlyList<BillingPeriod> periods,
        Func<BillingPeriod, CancellationToken, Task<IReadOnlyDictionary<string, decimal>>> oursIn,
        Func<BillingPeriod, CancellationToken, Task<HeldUsages>> heldIn,
        bool dryRun,
        BillingPeriod monthAtStart,
        CancellationToken cancellationToken,
        Func<BillingPeriod, CancellationToken, Task<IReadOnlyDictionary<string, decimal>>>? freshOursIn = null)
    {
        var rows = new List<UsageReportRow>();
        foreach (var period in periods)
        {
            var ours = await oursIn(period, cancellationToken);
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

            var held = await heldIn(period, cancellationToken);
            if (held.Failure is { } unreadable)
            {
                rows.AddRange(components.Select(c => Row(resourceUuid, subscriptionId, period, c, ours, null, UsageAction.Failed, UpstreamFailures.Describe(unreadable))));
                continue;
            }

            var comparisons = UsageAmounts.Compare(components, ours, held.Records.Where(h => h.Type is not null).Select(h => (h.Type!, h.Usage)));
            if (freshOursIn is not null && !dryRun && comparisons.Any(c => c.Differs))
            {
                // The run's snapshots are minutes old by now, and someone may have reported a newer total since (a
                // Terminate order's final report): set_usage replaces the month's value, so what is sent is the ledger
                // as it is now, never an older total over a newer one.
                ours = await freshOursIn(period, cancellationToken);
                comparisons = UsageAmounts.Compare(components, ours, held.Records.Where(h => h.Type is not null).Select(h => (h.Type!, h.Usage)));
            }

            var changed = comparisons.Where(c => c.Differs).ToList();
            rows.AddRange(comparisons.Where(c => !c.Differs).Select(c => new UsageReportRow(resourceUuid, subscriptionId, period.ToString(), c.Component, c.Ours, c.Waldur, UsageAction.Unchanged)));
            if (changed.Count == 0)
            {
                continue;
            }

            if (dryRun)
            {
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.WouldPost)));
                continue;
            }

            if (BillingPeriod.Of(clock.GetUtcNow()) != monthAtStart)
            {
                // The site agent's month-boundary guard: the next run reports with the new month's periods.
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Skipped, "the month rolled over during the run")));
                logger.LogInformation("Month rolled over while reporting resource {ResourceUuid}; it is reported next run", resourceUuid);
                break;
            }

            var date = period.ReportDate(waldurOptions.CurrentValue.FindTimeZone());
            if (clock.GetUtcNow() < date)
            {
                // Waldur west of UTC: its month has not begun, any earlier date would replace the previous month's total,
                // and Waldur takes no usage dated in the future. The new month waits for its local midnight.
                var reason = string.Create(CultureInfo.InvariantCulture, $"the month begins in Waldur's time zone at {date:yyyy-MM-dd HH:mm} UTC");
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Skipped, reason)));
                continue;
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
                    Date = date,
                    Usages = changed.Select(c => new ComponentUsageItemRequest { Type = c.Component, Amount = UsageAmounts.Format(c.Ours) }).ToList(),
                }, cancellationToken);
                metrics.UsageReportsSent.Inc();
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Posted)));
            }
            catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken))
            {
                var refused = IsRefusal(exception);
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, refused ? UsageAction.Refused : UsageAction.Failed, UpstreamFailures.Describe(exception))));
                logger.Log(refused ? LogLevel.Error : LogLevel.Warning, "Waldur did not take the usage of resource {ResourceUuid} for {Period}: {Reason}; retried next run",
                    resourceUuid, period, UpstreamFailures.Describe(exception));
            }
        }

        return rows;
    }

    /// <summary>
    /// Waldur's usages of every offering and month that has charged resources, read in pages (several
    /// offering-months at once). A failed read is kept and reported on each of its resources.
    /// </summary>
    private async Task<Dictionary<(Guid Offering, BillingPeriod Period), OfferingUsages>> OfferingUsagesAsync(
        IReadOnlyList<Guid> resources,
        Dictionary<Guid, (Guid Id, Guid OfferingUuid)> subscriptions,
        IReadOnlyList<BillingPeriod> periods,
        Dictionary<BillingPeriod, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, decimal>>> ours,
        CancellationToken cancellationToken)
    {
        var wanted = periods
            .SelectMany(period => resources
                .Where(r => ours[period].ContainsKey(r) && subscriptions.ContainsKey(r))
                .Select(r => (Offering: subscriptions[r].OfferingUuid, Period: period)))
            .Distinct()
            .ToList();
        var results = new OfferingUsages[wanted.Count];
        // Offerings at once; one offering's months one after the other, oldest first.
        var byOffering = Enumerable.Range(0, wanted.Count).GroupBy(index => wanted[index].Offering).ToList();
        await Parallel.ForEachAsync(byOffering,
            new ParallelOptions { MaxDegreeOfParallelism = options.CurrentValue.Concurrency, CancellationToken = cancellationToken },
            async (indexes, token) =>
            {
                foreach (var index in indexes)
                {
                    var (offering, period) = wanted[index];
                    try
                    {
                        var records = await ReadPagesAsync(
                            (page, size, innerToken) => waldur.ListOfferingComponentUsagesAsync(offering, period.ToWaldurDate(), page, size, innerToken), period, token);
                        results[index] = new OfferingUsages(records.Where(r => r.ResourceUuid is not null).ToLookup(r => r.ResourceUuid!.Value), null);
                    }
                    catch (Exception exception) when (IsWaldurFailure(exception, token))
                    {
                        logger.LogWarning("Could not read Waldur's usages of offering {OfferingUuid} for {Period}: {Reason}; its resources are retried next run",
                            offering, period, UpstreamFailures.Describe(exception));
                        results[index] = new OfferingUsages(null, exception);
                    }
                }
            });
        return wanted.Select((key, index) => (key, results[index])).ToDictionary(p => p.key, p => p.Item2);
    }

    private async Task<HeldUsages> ResourceUsagesAsync(Guid resourceUuid, BillingPeriod period, CancellationToken cancellationToken)
    {
        try
        {
            return new HeldUsages(await ReadPagesAsync(
                (page, size, token) => waldur.ListComponentUsagesAsync(resourceUuid, period.ToWaldurDate(), page, size, token), period, cancellationToken), null);
        }
        catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken))
        {
            logger.LogWarning("Could not read Waldur's usage of resource {ResourceUuid} for {Period}: {Reason}; retried next run", resourceUuid, period, UpstreamFailures.Describe(exception));
            return new HeldUsages([], exception);
        }
    }

    private async Task<List<ComponentUsageRecord>> ReadPagesAsync(
        Func<int, int, CancellationToken, Task<IApiResponse<List<ComponentUsageRecord>>>> readPage, BillingPeriod period, CancellationToken cancellationToken) =>
        await WaldurPages.ReadAllAsync(readPage, waldurOptions.CurrentValue.PageSize, cancellationToken)
            // Waldur filters by billing period; the check guards against a server that ignores the filter.
            .Where(r => r.BillingPeriod is null || r.BillingPeriod == period.FirstDay)
            .ToListAsync(cancellationToken);

    /// <summary>What Waldur holds for one resource and month, or why it could not be read.</summary>
    private sealed record HeldUsages(IReadOnlyList<ComponentUsageRecord> Records, Exception? Failure);

    /// <summary>What Waldur holds for every resource of one offering and month, or why it could not be read.</summary>
    private sealed record OfferingUsages(ILookup<Guid, ComponentUsageRecord>? Records, Exception? Failure)
    {
        public HeldUsages For(Guid resource) => Failure is null ? new HeldUsages(Records![resource].ToList(), null) : new HeldUsages([], Failure);
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

    /// <summary>Waldur answered and refused this request itself (not its own outage, not the adapter's credentials).</summary>
    private static bool IsRefusal(Exception exception) =>
        exception is Refit.ApiException { StatusCode: not (System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden) } api
        && (int)api.StatusCode is >= 400 and < 500 && !UpstreamFailures.IsTransientStatus(api.StatusCode);

    private static bool IsWaldurFailure(Exception exception, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested && (UpstreamFailures.IsTransient(exception) || exception is Refit.ApiException);

    private static UsageReportRow Row(Guid resource, Guid? subscription, BillingPeriod period, string component, IReadOnlyDictionary<string, decimal> ours, decimal? waldur, UsageAction action, string? detail) =>
        new(resource, subscription, period.ToString(), component, ours.TryGetValue(component, out var value) ? value : 0m, waldur, action, detail);

    private static UsageReportRow Compared(Guid resource, Guid? subscription, BillingPeriod period, ComponentUsageComparison comparison, UsageAction action, string? detail = null) =>
        new(resource, subscription, period.ToString(), comparison.Component, comparison.Ours, comparison.Waldur, action, detail);
}
