using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection;
using Quartz;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

/// <summary>The server schedules the usage report (clustered on PostgreSQL) and the hold sweeper.</summary>
public sealed class UsageJobTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Postgres);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task The_report_runs_every_30_minutes_on_one_replica_and_sends_usage_when_fired()
    {
        var server = await _bed.StartServerAsync();
        var scheduler = await server.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
        var subscription = await _bed.AddSubscriptionAsync();
        await _bed.Ledger.GrantAsync(subscription.CustomerId, 20, "test funding");
        await _bed.Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "m1");

        var metadata = await scheduler.GetMetadata();
        var report = (ISimpleTrigger)(await scheduler.GetTrigger(TriggerOf(ReportUsageJob.Key)))!;
        var sweeper = (ISimpleTrigger)(await scheduler.GetTrigger(TriggerOf(ReleaseExpiredHoldsJob.Key)))!;
        await scheduler.TriggerJob(ReportUsageJob.Key);
        await Eventually.TrueAsync(() => _bed.Waldur.Usages.Count == 1, because: "the fired job sends the month-to-date total");

        Assert.True(metadata.JobStoreClustered);
        Assert.Equal(TimeSpan.FromMinutes(30), report.RepeatInterval);
        Assert.Equal(TimeSpan.FromMinutes(1), sweeper.RepeatInterval);
        Assert.Equal("2.00", _bed.Waldur.Usages.Single()["usage"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_fired_report_and_the_charges_it_sends_are_counted_in_metrics()
    {
        var server = await _bed.StartServerAsync();
        var subscription = await _bed.AddSubscriptionAsync();
        await _bed.Ledger.GrantAsync(subscription.CustomerId, 20, "test funding");
        await _bed.Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "m1");
        // A settled hold is counted under its own component too (PostgreSQL settles through its own statement).
        var hold = await _bed.Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ImageGeneration, 10, 3, "i1");
        await _bed.Ledger.SettleAsync(hold.ReservationId!.Value);

        await (await server.Services.GetRequiredService<ISchedulerFactory>().GetScheduler()).TriggerJob(ReportUsageJob.Key);
        await Eventually.TrueAsync(() => _bed.Waldur.Usages.Count == 2, because: "the fired job sends both components' totals");
        using var http = server.CreateClient();
        var metrics = "";
        // Counted once Waldur's answer is back, which may be after the fake recorded the call.
        await Eventually.TrueAsync(async () => (metrics = await http.GetStringAsync("/metrics")).Contains("cmp_usage_reports_sent_total 1\n", StringComparison.Ordinal),
            because: "one set_usage call (both components of the one resource) is counted");

        Assert.Equal(
            ["cmp_credits_charged_total{component=\"chat_credits\"} 2", "cmp_credits_charged_total{component=\"image_credits\"} 10"],
            metrics.Split('\n').Where(l => l.StartsWith("cmp_credits_charged_total{", StringComparison.Ordinal)).Order(StringComparer.Ordinal));
    }

    private static TriggerKey TriggerOf(JobKey job) => new(job.Name + "-trigger", job.Group);
}
