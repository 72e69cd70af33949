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
    /// not yet in Waldur's time zone (<see cref="BillingPeriod.ReportDate"/>); sent by the first run after that. East of
    /// UTC, Waldur's month may end hours before the ledger's: Waldur refuses it as closed while the ledger's total may still
    /// grow, so it is carried (<see cref="ClosedPeriod"/>) by the first run after the ledger's month ends.
    /// </summary>
    Skipped,

    /// <summary>
    /// Waldur failed (after the run's own retries of a failure for the moment); retried next run (the total is recomputed
    /// from the ledger, so nothing is lost).
    /// </summary>
    Failed,

    /// <summary>
    /// Not sent: another report of the same resource (a run of another replica, a Terminate order's final report,
    /// <c>usage report</c>) held its <see cref="UsageReportLease"/> for longer than <see cref="UsageReportLease.Wait"/>, or
    /// took it over from this report (whose renewals failed for a whole lease); retried next run.
    /// </summary>
    Busy,

    /// <summary>
    /// Waldur refused the total (a 4xx other than 401, 403, 408 and 429: say, a component it does not know, or a
    /// month it refuses for another reason than a closed period). Tried again next run, but retrying the same request will
    /// not change the answer: an operator has to look.
    /// </summary>
    Refused,

    /// <summary>
    /// Not sent: Waldur takes no more usage for this month (a past billing period in its time zone: recent Waldur refuses a
    /// service provider's <c>set_usage</c> dated there for a usage-based component). What it does not hold of our total is
    /// carried into the current month's total (<see cref="UsageCarryover"/>) once, and the month is not sent again.
    /// </summary>
    ClosedPeriod,
}

public sealed record UsageReportRow(Guid ResourceUuid, Guid? SubscriptionId, string Period, string Component, decimal Ours, decimal? Waldur, UsageAction Action, string? Detail = null);

public sealed record UsageReport(IReadOnlyList<UsageReportRow> Rows, bool DryRun)
{
    public int Posted => Rows.Count(r => r.Action == UsageAction.Posted);

    /// <summary>True when something could not be sent (failed, refused, skipped or busy) and waits for the next run.</summary>
    public bool Unfinished => Rows.Any(r => r.Action is UsageAction.Failed or UsageAction.Refused or UsageAction.Skipped or UsageAction.Busy);
}

/// <summary>
/// Reports credits to Waldur as usage: for each resource, the month-to-date total per component for
/// the current and previous month (from settled charges), compared with what Waldur holds for that
/// billing period; <c>set_usage</c> is called only with the components that differ, dated the first
/// instant of the month in UTC and in Waldur's time zone (<see cref="BillingPeriod.ReportDate"/>), amounts with two decimals. Like the
/// site agent, a resource is skipped when the month rolls over during the run. Terminated subscriptions are reported for every month they have usage in.
/// A month Waldur no longer takes usage for is carried into the current month (<see cref="UsageAction.ClosedPeriod"/>): a
/// month's total is its ledger total plus what was carried into it. What is sent is read holding the resource's
/// <see cref="UsageReportLease"/> (every report path takes it), and a failure for the moment is retried within the run,
/// both sides read again first (<see cref="UsageSendRetries"/>).
/// </summary>
public sealed class UsageReporter(
    IWaldurApi waldur,
    IDbContextFactory<AdapterDbContext> dbs,
    PriceBooks priceBooks,
    TimeProvider clock,
    IOptionsMonitor<UsageOptions> options,
    IOptionsMonitor<WaldurOptions> waldurOptions,
    ILogger<UsageReporter> logger,
    Observability.AdapterMetrics metrics,
    UsageReportLease leases,
    UsageSendRetries retries)
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
        var ledger = new Dictionary<BillingPeriod, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, decimal>>>();
        var ours = new Dictionary<BillingPeriod, IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, decimal>>>();
        Dictionary<Guid, (Guid Id, Guid OfferingUuid)> subscriptions;
        Dictionary<Guid, Guid> customers;
        ILookup<Guid, UsageCarryover> carried;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            carried = await UsageCarryovers.ForPeriodsAsync(db, periods, cancellationToken);
            foreach (var month in periods)
            {
                ledger[month] = await UsageTotals.ForPeriodAsync(db, month, cancellationToken);
                ours[month] = WithCarried(ledger[month], carried, month);
            }

            var charged = ours.Values.SelectMany(t => t.Keys).Distinct().ToList();
            var found = (await db.Subscriptions.AsNoTracking()
                    .Where(s => charged.Contains(s.ResourceUuid))
                    .Select(s => new { s.ResourceUuid, s.Id, s.OfferingUuid, s.CustomerId })
                    .ToListAsync(cancellationToken))
                .GroupBy(s => s.ResourceUuid)
                .ToDictionary(g => g.Key, g => g.First());
            subscriptions = found.ToDictionary(p => p.Key, p => (p.Value.Id, p.Value.OfferingUuid));
            customers = found.ToDictionary(p => p.Key, p => p.Value.CustomerId);
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
                    customers.TryGetValue(resource, out var customer) ? customer : null,
                    subscription is { } known ? components[known.OfferingUuid] : [],
                    periods,
                    (month, _) => Task.FromResult(ledger[month].TryGetValue(resource, out var totals) ? totals : EmptyTotals),
                    carried[resource].ToList(),
                    (month, innerToken) => subscription is { } known && held.TryGetValue((known.OfferingUuid, month), out var offering)
                        ? Task.FromResult(offering.For(resource))
                        : ResourceUsagesAsync(resource, month, innerToken),
                    dryRun,
                    monthAtStart,
                    token);
            });
        var rows = perResource.SelectMany(r => r).ToList();

        var report = new UsageReport(rows, dryRun);
        logger.LogInformation("Usage report{DryRun}: {Resources} resource(s), {Posted} component total(s) sent, {Unchanged} unchanged, {Failed} failed, {Refused} refused, {Skipped} skipped, {Busy} left to the next run while another report of their resource ran, {Closed} in months Waldur has closed",
            dryRun ? " (dry run)" : string.Empty, resources.Count, report.Posted,
            rows.Count(r => r.Action == UsageAction.Unchanged), rows.Count(r => r.Action == UsageAction.Failed), rows.Count(r => r.Action == UsageAction.Refused), rows.Count(r => r.Action == UsageAction.Skipped),
            rows.Count(r => r.Action == UsageAction.Busy), rows.Count(r => r.Action == UsageAction.ClosedPeriod));
        return report;
    }

    /// <summary>Reports one resource now (the final report of a Terminate order): its own queries and Waldur reads only.</summary>
    public async Task<IReadOnlyList<UsageReportRow>> ReportResourceAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.ResourceUuid == resourceUuid)
            .Select(s => new { s.Id, s.OfferingUuid, s.CustomerId })
            .FirstOrDefaultAsync(cancellationToken);
        var periods = Periods(null);
        return await ReportResourceAsync(
            resourceUuid,
            subscription?.Id,
            subscription?.CustomerId,
            subscription is null ? [] : Components(subscription.OfferingUuid),
            periods,
            async (month, token) => await UsageTotals.ForResourceAsync(db, resourceUuid, month, token),
            await UsageCarryovers.ForResourceAsync(db, resourceUuid, periods, cancellationToken),
            (month, token) => ResourceUsagesAsync(resourceUuid, month, token),
            dryRun: false,
            BillingPeriod.Of(clock.GetUtcNow()),
            cancellationToken);
    }

    private static readonly IReadOnlyDictionary<string, decimal> EmptyTotals = new Dictionary<string, decimal>(StringComparer.Ordinal);

    /// <summary>Every resource's totals for <paramref name="month"/>: the ledger's plus what was carried into it.</summary>
    private static Dictionary<Guid, IReadOnlyDictionary<string, decimal>> WithCarried(
        IReadOnlyDictionary<Guid, IReadOnlyDictionary<string, decimal>> ledger, ILookup<Guid, UsageCarryover> carried, BillingPeriod month)
    {
        var totals = ledger.ToDictionary(p => p.Key, p => p.Value);
        foreach (var resource in carried)
        {
            var plus = UsageCarryovers.Plus(totals.GetValueOrDefault(resource.Key) ?? EmptyTotals, resource, month);
            if (plus.Count > 0)
            {
                totals[resource.Key] = plus;
            }
        }

        return totals;
    }

    private IReadOnlyList<BillingPeriod> Periods(BillingPeriod? period) =>
        period is { } only ? [only] : BillingPeriod.Reporting(clock.GetUtcNow(), options.CurrentValue.ReportingPeriods);

    private async Task<IReadOnlyList<UsageReportRow>> ReportResourceAsync(
        Guid resourceUuid,
        Guid? subscriptionId,
        Guid? customerId,
        IReadOnlyList<string> offered,
        IReadOnlyList<BillingPeriod> periods,
        Func<BillingPeriod, CancellationToken, Task<IReadOnlyDictionary<string, decimal>>> ledgerIn,
        IReadOnlyList<UsageCarryover> carriedAtStart,
        Func<BillingPeriod, CancellationToken, Task<HeldUsages>> heldIn,
        bool dryRun,
        BillingPeriod monthAtStart,
        CancellationToken cancellationToken)
    {
        var rows = new List<UsageReportRow>();
        // Taken when something differs: what was read until then only tells whether there is anything to send.
        await using var lease = leases.For(resourceUuid);
        // The resource's carries, kept up to date as this run records some (an older month's lands in a later one).
        var carried = carriedAtStart.ToList();
        foreach (var period in periods)
        {
            var ours = UsageCarryovers.Plus(await ledgerIn(period, cancellationToken), carried, period);
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
            var closed = carried.Where(c => c.FromPeriod == period.FirstDay).ToList();
            if (closed.Count > 0)
            {
                // Waldur refused this month before and takes nothing more for it: what it lacked was carried, so nothing is
                // sent. A component with no carry yet (charged after the carry was recorded) is carried now.
                var uncarried = comparisons.Where(c => c.Differs && !closed.Any(x => x.Component == c.Component)).ToList();
                if (uncarried.Count > 0 && !dryRun)
                {
                    closed.AddRange(await CarryAsync(resourceUuid, subscriptionId, customerId, period, monthAtStart, uncarried, carried, cancellationToken));
                }

                rows.AddRange(comparisons.Select(c => !c.Differs
                    ? Compared(resourceUuid, subscriptionId, period, c, UsageAction.Unchanged)
                    : Compared(resourceUuid, subscriptionId, period, c, UsageAction.ClosedPeriod, ClosedDetail(closed.FirstOrDefault(x => x.Component == c.Component)))));
                continue;
            }

            var changed = comparisons.Where(c => c.Differs).ToList();
            if (changed.Count == 0)
            {
                rows.AddRange(comparisons.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Unchanged)));
                continue;
            }

            if (dryRun)
            {
                rows.AddRange(comparisons.Where(c => !c.Differs).Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Unchanged)));
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.WouldPost)));
                continue;
            }

            if (!await lease.TakeAsync(cancellationToken))
            {
                rows.AddRange(comparisons.Select(c => c.Differs
                    ? Compared(resourceUuid, subscriptionId, period, c, UsageAction.Busy, $"another report of this resource held its lease for over {UsageReportLease.Wait.TotalSeconds:0} s; retried next run")
                    : Compared(resourceUuid, subscriptionId, period, c, UsageAction.Unchanged)));
                logger.LogWarning("Usage of resource {ResourceUuid} for {Period} was not sent: another report of the resource kept its lease; retried next run", resourceUuid, period);
                continue;
            }

            var (sent, rolledOver) = await SendAsync(resourceUuid, subscriptionId, customerId, components, periods, period, monthAtStart, carried, lease, cancellationToken);
            rows.AddRange(sent);
            if (rolledOver)
            {
                break;
            }
        }

        return rows;
    }

    /// <summary>
    /// Sends one month of a resource, holding its <see cref="UsageReportLease"/>: the ledger's total (and what was carried
    /// into the month) and what Waldur holds are read now, after the lease was taken, so no older total can reach Waldur
    /// after a newer one (<c>set_usage</c> replaces the month's value). A failure for the moment is retried in this run
    /// (<see cref="UsageSendRetries"/>), both sides read again first: a charge settled in between is in the next attempt's
    /// total, and a total the failed attempt did store after all is not sent again. Nothing is sent once the lease was taken over
    /// by another report (<see cref="UsageAction.Busy"/>). True with the rows when the month rolled over.
    /// </summary>
    private async Task<(List<UsageReportRow> Rows, bool MonthRolledOver)> SendAsync(
        Guid resourceUuid, Guid? subscriptionId, Guid? customerId, IReadOnlyList<string> components, IReadOnlyList<BillingPeriod> periods,
        BillingPeriod period, BillingPeriod monthAtStart, List<UsageCarryover> carried, UsageReportLease.Holding lease, CancellationToken cancellationToken)
    {
        // What a failed attempt sent: Waldur may have stored it all the same (an answer lost on the way back).
        var attempted = new Dictionary<string, decimal>(StringComparer.Ordinal);
        for (var attempt = 1; ; attempt++)
        {
            IReadOnlyDictionary<string, decimal> ledger;
            await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
            {
                var carriedNow = await UsageCarryovers.ForResourceAsync(db, resourceUuid, periods, cancellationToken);
                carried.Clear();
                carried.AddRange(carriedNow);
                ledger = await UsageTotals.ForResourceAsync(db, resourceUuid, period, cancellationToken);
            }

            var ours = UsageCarryovers.Plus(ledger, carried, period);
            var held = await ResourceUsagesAsync(resourceUuid, period, cancellationToken);
            if (held.Failure is { } unreadable)
            {
                return (components.Select(c => Row(resourceUuid, subscriptionId, period, c, ours, null, UsageAction.Failed, UpstreamFailures.Describe(unreadable))).ToList(), false);
            }

            var comparisons = UsageAmounts.Compare(components, ours, held.Records.Where(h => h.Type is not null).Select(h => (h.Type!, h.Usage)));
            var rows = comparisons.Where(c => !c.Differs)
                .Select(c => Compared(resourceUuid, subscriptionId, period, c, attempted.TryGetValue(c.Component, out var sent) && sent == c.Ours ? UsageAction.Posted : UsageAction.Unchanged))
                .ToList();
            var changed = comparisons.Where(c => c.Differs).ToList();
            if (changed.Count == 0)
            {
                return (rows, false);
            }

            if (BillingPeriod.Of(clock.GetUtcNow()) != monthAtStart)
            {
                // The site agent's month-boundary guard: the next run reports with the new month's periods.
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Skipped, "the month rolled over during the run")));
                logger.LogInformation("Month rolled over while reporting resource {ResourceUuid}; it is reported next run", resourceUuid);
                return (rows, true);
            }

            var waldurZone = waldurOptions.CurrentValue.FindTimeZone();
            var date = period.ReportDate(waldurZone);
            if (clock.GetUtcNow() < date)
            {
                // Waldur west of UTC: its month has not begun, any earlier date would replace the previous month's total,
                // and Waldur takes no usage dated in the future. The new month waits for its local midnight.
                var reason = string.Create(CultureInfo.InvariantCulture, $"the month begins in Waldur's time zone at {date:yyyy-MM-dd HH:mm} UTC");
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Skipped, reason)));
                return (rows, false);
            }

            foreach (var decrease in changed.Where(c => c.Waldur is { } w && c.Ours < w))
            {
                logger.LogWarning("Waldur holds {Waldur} {Component} for resource {ResourceUuid} in {Period}, more than the ledger's {Ours}; sending the ledger's total",
                    decrease.Waldur, decrease.Component, resourceUuid, period, decrease.Ours);
            }

            if (!await lease.StillHeldAsync(cancellationToken))
            {
                // This report's renewals failed for a whole lease and another report took it over: that one may be sending a
                // newer total, which this older one must not replace.
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Busy, "another report of this resource took over its lease; retried next run")));
                logger.LogWarning("Usage of resource {ResourceUuid} for {Period} was not sent: another report of the resource took over its lease; retried next run", resourceUuid, period);
                return (rows, false);
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
                return (rows, false);
            }
            catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken) && IsClosedPeriod(exception, period, waldurZone))
            {
                if (period < monthAtStart)
                {
                    var carries = await CarryAsync(resourceUuid, subscriptionId, customerId, period, monthAtStart, changed, carried, cancellationToken);
                    rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.ClosedPeriod, ClosedDetail(carries.FirstOrDefault(x => x.Component == c.Component)))));
                }
                else
                {
                    // East of UTC Waldur's month ends hours before the ledger's: the total is not final yet, so it is
                    // carried by the first run after the ledger's month ends (the month is then the previous one).
                    rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, UsageAction.Skipped,
                        $"Waldur's billing period {period} has ended in its time zone; what it lacks is carried into {period.Next} once the month ends in UTC")));
                    logger.LogDebug("Waldur takes no more usage of resource {ResourceUuid} for {Period}; carried into {Next} once the month ends in UTC", resourceUuid, period, period.Next);
                }

                return (rows, false);
            }
            catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken) && UpstreamFailures.IsTransient(exception)
                                              && retries.DelayAfter(attempt, exception) is { } wait)
            {
                foreach (var component in changed)
                {
                    attempted[component.Component] = component.Ours;
                }

                logger.LogWarning("Waldur did not take the usage of resource {ResourceUuid} for {Period} for the moment: {Reason}; attempt {Attempt} of {Attempts} in {Wait}, with the ledger and Waldur read again",
                    resourceUuid, period, UpstreamFailures.Describe(exception), attempt + 1, UsageSendRetries.Attempts, wait);
                await retries.WaitAsync(wait, cancellationToken);
            }
            catch (Exception exception) when (IsWaldurFailure(exception, cancellationToken))
            {
                var refused = IsRefusal(exception);
                rows.AddRange(changed.Select(c => Compared(resourceUuid, subscriptionId, period, c, refused ? UsageAction.Refused : UsageAction.Failed, UpstreamFailures.Describe(exception))));
                logger.Log(refused ? LogLevel.Error : LogLevel.Warning, "Waldur did not take the usage of resource {ResourceUuid} for {Period}: {Reason}; retried next run",
                    resourceUuid, period, UpstreamFailures.Describe(exception));
                return (rows, false);
            }
        }
    }

    /// <summary>
    /// Carries what Waldur lacks of <paramref name="differing"/> (the closed <paramref name="period"/>'s totals) into
    /// <paramref name="into"/>, the current month, once: the rows as stored (a racing replica's or run's amounts win) are
    /// added to <paramref name="carried"/>, so this run's later months include them, and returned. Logged once per
    /// resource and month, by whoever recorded it.
    /// </summary>
    private async Task<IReadOnlyList<UsageCarryover>> CarryAsync(
        Guid resourceUuid, Guid? subscriptionId, Guid? customerId, BillingPeriod period, BillingPeriod into,
        IReadOnlyList<ComponentUsageComparison> differing, List<UsageCarryover> carried, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var (stored, written) = await UsageCarryovers.RecordAsync(dbs, resourceUuid, period, differing.Select(c => new UsageCarryover
        {
            ResourceUuid = resourceUuid,
            Component = c.Component,
            FromPeriod = period.FirstDay,
            IntoPeriod = into.FirstDay,
            Credits = UsageAmounts.Residue(c),
            SubscriptionId = subscriptionId,
            CustomerId = customerId,
            CarriedAt = now,
        }).ToList(), cancellationToken);
        carried.RemoveAll(c => c.FromPeriod == period.FirstDay && stored.Any(s => s.Component == c.Component));
        carried.AddRange(stored);
        if (written.Count > 0)
        {
            logger.LogInformation("Waldur takes no more usage of resource {ResourceUuid} for {Period} (a past billing period); carried into {Into}: {Carried}",
                resourceUuid, period, into, string.Join(", ", written.Select(c => $"{c.Component} {UsageAmounts.Format(c.Credits)}")));
        }

        return stored;
    }

    private static string ClosedDetail(UsageCarryover? carry) => carry is null
        ? "Waldur takes no more usage for this month"
        : $"Waldur takes no more usage for this month; {UsageAmounts.Format(carry.Credits)} carried into {BillingPeriod.FromFirstDay(carry.IntoPeriod)}";

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

    /// <summary>
    /// Waldur refused a month it takes no more usage for: a billing period before its current one in its time zone, which
    /// recent Waldur refuses a service provider for a usage-based component ("Service providers can only specify date for
    /// limit-based or prepaid billing components when backfilling past billing periods"; older builds: "… for limit-based
    /// billing components"). The same words about the current month are another refusal.
    /// </summary>
    private bool IsClosedPeriod(Exception exception, BillingPeriod period, TimeZoneInfo waldurZone)
    {
        if (exception is not Refit.ApiException { StatusCode: System.Net.HttpStatusCode.BadRequest } api
            || api.Content?.Contains("only specify date for limit-based", StringComparison.OrdinalIgnoreCase) != true)
        {
            return false;
        }

        var waldurNow = TimeZoneInfo.ConvertTime(clock.GetUtcNow(), waldurZone);
        return period < BillingPeriod.Of(waldurNow.Year, waldurNow.Month);
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
