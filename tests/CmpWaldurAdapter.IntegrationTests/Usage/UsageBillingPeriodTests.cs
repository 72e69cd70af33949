using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Events;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

public sealed class UsageBillingPeriodOnSqliteTests() : UsageBillingPeriodTests(DatabaseProvider.Sqlite);

public sealed class UsageBillingPeriodOnPostgresTests() : UsageBillingPeriodTests(DatabaseProvider.Postgres);

/// <summary>
/// Waldur's set_usage overwrites the month-to-date total of a resource, component and billing period, and its date
/// picks the period: month boundaries, months Waldur has closed, terminations, failures of one resource and totals
/// Waldur lost must neither lose a charge nor count one twice.
/// </summary>
public abstract class UsageBillingPeriodTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string SetUsagePath = "/api/marketplace-component-usages/set_usage/";
    private static readonly DateOnly March = new(2026, 3, 1);
    private static readonly DateOnly April = new(2026, 4, 1);

    private CreditTestBed _bed = null!;
    private Guid _customer;

    private UsageReporter Reporter => _bed.Services.GetRequiredService<UsageReporter>();

    private CreditLedger Ledger => _bed.Ledger;

    private TestClock Clock => _bed.Clock!;

    public Task InitializeAsync() => StartAsync("UTC");

    /// <summary>A fresh bed whose Waldur runs in <paramref name="waldurTimeZone"/>, and the adapter told so.</summary>
    private async Task StartAsync(string waldurTimeZone, string? attemptTimeout = null)
    {
        _bed = await CreditTestBed.CreateAsync(provider, new DateTimeOffset(2026, 3, 20, 10, 0, 0, TimeSpan.Zero));
        _bed.Waldur.TimeZone = TimeZoneInfo.FindSystemTimeZoneById(waldurTimeZone);
        _bed.Settings["Waldur:TimeZone"] = waldurTimeZone;
        if (attemptTimeout is not null)
        {
            _bed.Settings["Waldur:AttemptTimeout"] = attemptTimeout;
        }

        // One resource at a time, in order, so a fault injected for the next set_usage hits exactly one resource.
        _bed.Settings["Usage:Concurrency"] = "1";
        await _bed.StartAsync();
        _customer = Guid.NewGuid();
        await Ledger.GrantAsync(_customer, 10_000, "test funding");
    }

    private async Task RestartWithWaldurInAsync(string waldurTimeZone, string? attemptTimeout = null)
    {
        await _bed.DisposeAsync();
        await StartAsync(waldurTimeZone, attemptTimeout);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_charge_of_the_previous_month_committed_after_its_last_report_corrects_that_month_and_not_the_new_one()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 40, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync(); // the last report of March
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 59, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        var hold = await Ledger.ReserveAsync(_customer, agent.Id, agent.OfferingUuid, ActionClass.VoiceInteraction, 2, 3, "call begun in March");
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 5, 0, TimeSpan.Zero));
        Assert.Equal(SettleStatus.Settled, (await Ledger.SettleAsync(hold.ReservationId!.Value)).Status);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        var before = SetUsageBodies().Count;

        await Reporter.ReportAsync();

        // The ledger books a settled hold in the month it settles in, and Waldur gets it there, once.
        Assert.Equal(["2026-03-01 chat_credits=4.00", "2026-04-01 voice_credits=2.00"], SetUsageBodies().Skip(before).Select(Sent));
        Assert.Equal([("chat_credits", March, "4.00"), ("voice_credits", April, "2.00")], WaldurHolds(agent));
        Assert.Equal(await LedgerHoldsAsync(agent, March, April), WaldurHolds(agent));
        Assert.Empty(await _bed.QueryAsync(db => db.UsageCarryovers.AsNoTracking().ToListAsync())); // Waldur took March: nothing carried
    }

    [Fact]
    public async Task The_first_run_of_a_month_sends_the_final_total_of_the_previous_month_for_every_resource_then_the_new_months()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        var busy = await _bed.AddSubscriptionAsync(_customer);
        var lateStarter = await _bed.AddSubscriptionAsync(_customer);
        var quiet = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 30, 0, TimeSpan.Zero));
        await ChargeAsync(busy, ActionClass.ChatMessage, 2);
        await ChargeAsync(quiet, ActionClass.RagDocument, 5);
        await Reporter.ReportAsync(); // the last report of March
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 50, 0, TimeSpan.Zero));
        await ChargeAsync(busy, ActionClass.ChatMessage, 2);
        await ChargeAsync(lateStarter, ActionClass.ImageGeneration, 10);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 0, 30, TimeSpan.Zero));
        await ChargeAsync(busy, ActionClass.ChatMessage, 2);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        var before = SetUsageBodies().Count;

        var report = await Reporter.ReportAsync();

        var sent = SetUsageBodies().Skip(before).ToList();
        Assert.Equal(["2026-03-01 chat_credits=4.00", "2026-04-01 chat_credits=2.00"], sent.Where(b => IsFor(b, busy)).Select(Sent));
        Assert.Equal(["2026-03-01 image_credits=10.00"], sent.Where(b => IsFor(b, lateStarter)).Select(Sent));
        Assert.DoesNotContain(sent, b => IsFor(b, quiet));
        Assert.Contains(report.Rows, r => r is { Period: "2026-03", Component: "rag_credits", Action: UsageAction.Unchanged, Ours: 5m });
        Assert.False(report.Unfinished);
        foreach (var agent in new[] { busy, lateStarter, quiet })
        {
            Assert.Equal(await LedgerHoldsAsync(agent, March, April), WaldurHolds(agent));
        }
    }

    [Fact]
    public async Task A_resource_terminated_mid_month_has_its_final_usage_with_termination_charges_reported_once_to_that_month()
    {
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 15, 10, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await SetStateAsync(agent, SubscriptionState.Terminating);
        // Removing the knowledge base charges the parses it finished.
        await ChargeAsync(agent, ActionClass.RagDocument, 5, whileTerminating: true);

        var final = await Reporter.ReportResourceAsync(agent.ResourceUuid, CancellationToken.None);
        await SetStateAsync(agent, SubscriptionState.Terminated);
        var afterTermination = await Ledger.ChargeAsync(_customer, agent.Id, agent.OfferingUuid, ActionClass.RagDocument, 5, 3, Guid.NewGuid().ToString(), whileTerminating: true);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 15, 10, 30, 0, TimeSpan.Zero));
        var sameMonth = await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        var nextMonth = await Reporter.ReportAsync();

        Assert.Equal(2, final.Count(r => r.Action == UsageAction.Posted));
        Assert.Equal(ChargeStatus.Refused, afterTermination.Status);
        Assert.Equal(0, sameMonth.Posted);
        Assert.Equal(0, nextMonth.Posted);
        Assert.Equal(["2026-03-01 chat_credits=4.00 rag_credits=5.00"], SetUsageBodies().Select(Sent));
        Assert.Equal([("chat_credits", March, "4.00"), ("rag_credits", March, "5.00")], WaldurHolds(agent));
    }

    [Fact]
    public async Task A_termination_charge_after_the_final_report_is_sent_by_the_next_run_as_the_months_whole_total()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 50, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.RagDocument, 5);
        await SetStateAsync(agent, SubscriptionState.Terminating);
        await Reporter.ReportResourceAsync(agent.ResourceUuid, CancellationToken.None);
        // A parse the knowledge base's removal charges after the final report went out, just before midnight.
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.RagDocument, 5, whileTerminating: true);
        await SetStateAsync(agent, SubscriptionState.Terminated);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));

        var next = await Reporter.ReportAsync();
        var after = await Reporter.ReportAsync();

        Assert.Equal(1, next.Posted);
        Assert.Equal(0, after.Posted);
        Assert.Equal(["2026-03-01 rag_credits=5.00", "2026-03-01 rag_credits=10.00"], SetUsageBodies().Select(Sent));
        Assert.Equal([("rag_credits", March, "10.00")], WaldurHolds(agent));
    }

    [Fact]
    public async Task When_waldur_fails_for_one_resource_the_others_are_still_sent_and_it_gets_its_whole_total_next_run()
    {
        await OneResourceFailingAsync(() => _bed.Waldur.Fail("POST", SetUsagePath, 503, times: UsageSendRetries.Attempts), "503");
    }

    [Fact]
    public async Task When_waldur_hangs_for_one_resource_the_others_are_still_sent_and_it_gets_its_whole_total_next_run()
    {
        await OneResourceFailingAsync(() => _bed.Waldur.Fail("POST", SetUsagePath, 201, times: UsageSendRetries.Attempts, delay: TimeSpan.FromSeconds(5)), null);
    }

    private async Task OneResourceFailingAsync(Action failTheNextResource, string? detail)
    {
        var agents = new[] { await _bed.AddSubscriptionAsync(_customer), await _bed.AddSubscriptionAsync(_customer), await _bed.AddSubscriptionAsync(_customer) };
        foreach (var agent in agents)
        {
            await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        }

        // The first resource's set_usage fails every attempt of the run (the client never sends it again; the reporter
        // tries it UsageSendRetries.Attempts times); a hanging one outlasts the test host's 2-second attempt timeout.
        failTheNextResource();
        var failed = await Reporter.ReportAsync();
        _bed.Waldur.Heal();
        foreach (var agent in agents)
        {
            await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        }

        var next = await Reporter.ReportAsync();

        var failure = Assert.Single(failed.Rows, r => r.Action == UsageAction.Failed);
        if (detail is not null)
        {
            Assert.Contains(detail, failure.Detail, StringComparison.Ordinal);
        }

        Assert.Equal(2, failed.Posted);
        Assert.Equal(3, next.Posted);
        Assert.False(next.Unfinished);
        foreach (var agent in agents)
        {
            Assert.Equal([("chat_credits", March, "4.00")], WaldurHolds(agent));
        }

        // The one that failed is sent its whole month-to-date total, never what was charged since.
        Assert.Equal("2026-03-01 chat_credits=4.00", Sent(SetUsageBodies().Single(b => b["resource"]!.GetValue<string>() == failure.ResourceUuid.ToString())));
    }

    [Fact]
    public async Task A_total_whose_answer_was_lost_is_sent_again_from_the_ledger_in_the_run_while_a_final_report_waits()
    {
        // The periodic run's answer waits while the final report tries to run: longer than the test host's 2-second attempts.
        await RestartWithWaldurInAsync("UTC", attemptTimeout: "00:00:30");
        var agent = await _bed.AddSubscriptionAsync(_customer);
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        // Waldur takes the periodic run's total, but its answer is lost: a 503 asking to come back in a second. While the
        // run waits for it, more is charged and the Terminate order's final report tries to report: the run holds the
        // resource's usage lease, so the final report leaves it (the order would be deferred).
        IReadOnlyList<UsageReportRow> final = [];
        _bed.Waldur.LoseAnswer("POST", SetUsagePath, 503, retryAfter: TimeSpan.FromSeconds(1), meanwhile: async () =>
        {
            await ChargeAsync(agent, ActionClass.ChatMessage, 3);
            final = await Reporter.ReportResourceAsync(agent.ResourceUuid, CancellationToken.None);
        });

        var periodic = await Reporter.ReportAsync();
        var heldAfterPeriodic = WaldurHolds(agent);
        var next = await Reporter.ReportAsync();

        // The run's retry read the ledger and Waldur again: the newer total, never the lost request's copy.
        Assert.Equal([("chat_credits", March, "5.00")], heldAfterPeriodic);
        Assert.Equal(["2026-03-01 chat_credits=5.00"], SetUsageBodies().Select(Sent)); // answered ones: the lost one was answered 503
        Assert.Equal(2, _bed.Waldur.Count("POST", SetUsagePath));
        Assert.Equal(5m, Assert.Single(final, r => r.Action == UsageAction.Busy).Ours);
        Assert.Equal(5m, Assert.Single(periodic.Rows, r => r.Action == UsageAction.Posted).Ours);
        Assert.False(periodic.Unfinished);
        Assert.Equal(0, next.Posted);
        Assert.False(next.Unfinished);
    }

    [Fact]
    public async Task Only_the_offerings_declared_components_are_reported_as_two_decimal_strings()
    {
        var agent = await _bed.AddSubscriptionAsync(_customer);
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        // Automation runs are no component of this offering: Waldur would refuse the whole call.
        await ChargeAsync(agent, ActionClass.AutomationRun, 3);

        var report = await Reporter.ReportAsync();

        var sent = Assert.Single(SetUsageBodies());
        var usage = Assert.Single(sent["usages"]!.AsArray());
        Assert.Equal("chat_credits", usage!["type"]!.GetValue<string>());
        Assert.Equal(JsonValueKind.String, usage["amount"]!.GetValueKind());
        Assert.Equal("2.00", usage["amount"]!.GetValue<string>());
        Assert.DoesNotContain(report.Rows, r => r.Component == "automation_credits");
        Assert.Equal(TestCatalogue.Components, report.Rows.Select(r => r.Component).Order(StringComparer.Ordinal));
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("automation_credits", StringComparison.Ordinal) && line.Contains("no such component", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_total_waldur_lost_or_changed_is_sent_again_and_only_that_one()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        var agent = await _bed.AddSubscriptionAsync(_customer);
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await ChargeAsync(agent, ActionClass.RagDocument, 5);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 2, 9, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync();
        var unchanged = await Reporter.ReportAsync();
        var before = SetUsageBodies().Count;
        _bed.Waldur.ReplaceStoredUsage(agent.ResourceUuid, "chat_credits", March, null);
        _bed.Waldur.ReplaceStoredUsage(agent.ResourceUuid, "chat_credits", April, "1.00");

        var corrected = await Reporter.ReportAsync();

        Assert.Equal(0, unchanged.Posted);
        Assert.Equal(2, corrected.Posted);
        Assert.Equal(["2026-03-01 chat_credits=2.00", "2026-04-01 chat_credits=2.00"], SetUsageBodies().Skip(before).Select(Sent));
        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "2.00"), ("rag_credits", March, "5.00")], WaldurHolds(agent));
    }

    public static TheoryData<string> WaldurTimeZones() => new()
    {
        "Etc/GMT+12", // UTC-12
        "America/New_York", // UTC-5 on March 1st
        "UTC",
        "Pacific/Kiritimati", // UTC+14
    };

    /// <summary>
    /// Waldur reads set_usage's date in its own TIME_ZONE and bills the month it falls in there: a date at midnight UTC
    /// on the 1st is the previous month's last evening west of UTC, where the month-to-date total would replace the
    /// previous month's and the current month would hold nothing.
    /// </summary>
    [Theory]
    [MemberData(nameof(WaldurTimeZones))]
    public async Task Usage_lands_in_its_own_month_whatever_time_zone_waldur_runs_in(string zone)
    {
        await RestartWithWaldurInAsync(zone);
        var agent = await _bed.AddSubscriptionAsync(_customer);
        // February's total, reported and invoiced earlier: March's report must not touch it.
        _bed.Waldur.SeedUsage(agent.ResourceUuid, "chat_credits", March.AddMonths(-1), "7.00");
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);

        var report = await Reporter.ReportAsync();
        var again = await Reporter.ReportAsync();

        Assert.Equal(1, report.Posted);
        Assert.Equal(0, again.Posted); // what Waldur lists for March is what was sent: nothing left to correct
        Assert.Equal([("chat_credits", March.AddMonths(-1), "7.00"), ("chat_credits", March, "2.00")], WaldurHolds(agent));
    }

    /// <summary>
    /// West of UTC the ledger's new month begins before Waldur's, and Waldur takes no date in the future: the new month's
    /// totals wait for the 1st's midnight in Waldur's zone (04:00 UTC in New York in April, daylight saving time).
    /// </summary>
    [Fact]
    public async Task West_of_utc_a_new_months_usage_waits_for_midnight_in_waldurs_time_zone_and_then_lands_in_that_month()
    {
        await RestartWithWaldurInAsync("America/New_York");
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 1, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);

        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 3, 59, 59, TimeSpan.Zero));
        var beforeMidnightThere = await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 4, 0, 0, TimeSpan.Zero));
        var midnightThere = await Reporter.ReportAsync();

        var skipped = Assert.Single(beforeMidnightThere.Rows, r => r.Action == UsageAction.Skipped);
        Assert.Equal(("2026-04", "chat_credits", 2m, (decimal?)null), (skipped.Period, skipped.Component, skipped.Ours, skipped.Waldur));
        Assert.True(beforeMidnightThere.Unfinished);
        Assert.Equal(0, beforeMidnightThere.Posted);
        Assert.Equal(1, midnightThere.Posted);
        Assert.Equal([new DateTimeOffset(2026, 3, 1, 5, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 4, 1, 4, 0, 0, TimeSpan.Zero)], SetUsageBodies().Select(Date));
        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "2.00")], WaldurHolds(agent));
    }

    /// <summary>In UTC (Waldur's default) and east of it the month begins in Waldur no later than in the ledger: no wait.</summary>
    [Fact]
    public async Task With_waldur_in_utc_a_new_months_usage_is_sent_at_once_dated_midnight_utc()
    {
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);

        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 30, 0, TimeSpan.Zero));
        var report = await Reporter.ReportAsync();

        Assert.DoesNotContain(report.Rows, r => r.Action == UsageAction.Skipped);
        Assert.False(report.Unfinished);
        Assert.Equal(1, report.Posted);
        Assert.Equal([new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero)], SetUsageBodies().Select(Date));
        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "2.00")], WaldurHolds(agent));
    }

    [Fact]
    public async Task Charges_of_a_months_last_minutes_reported_after_waldur_closed_it_are_billed_once_in_the_next_months_total()
    {
        var agent = await _bed.AddSubscriptionAsync(_customer);
        var overReported = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 40, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await ChargeAsync(overReported, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync(); // March's last report Waldur takes
        // An operator set more than the ledger's total for the second: nothing of it is missing, so nothing is carried.
        _bed.Waldur.ReplaceStoredUsage(overReported.ResourceUuid, "chat_credits", March, "9.00");
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 58, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await ChargeAsync(agent, ActionClass.RagDocument, 5);
        await ChargeAsync(overReported, ActionClass.ChatMessage, 2);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 5, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        var before = SetUsageBodies().Count;

        // Waldur (a service provider's token, as the adapter's is) now refuses usage dated in March.
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        var first = await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 40, 0, TimeSpan.Zero));
        var second = await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 1, 10, 0, TimeSpan.Zero));
        var third = await Reporter.ReportAsync();

        // March's missing 2 chat and 5 rag credits are in April's totals, next to April's own 2.
        Assert.Equal(["2026-04-01 chat_credits=4.00 rag_credits=5.00"], SetUsageBodies().Skip(before).Select(Sent));
        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "4.00"), ("rag_credits", April, "5.00")], WaldurHolds(agent));
        Assert.Equal([("chat_credits", March, "9.00")], WaldurHolds(overReported));
        // Waldur refused March once per resource; later runs know it is closed and do not send it again.
        Assert.Equal(2, RefusedAsPastPeriod());
        Assert.Equal(
            [("chat_credits", "2.00 carried into 2026-04"), ("rag_credits", "5.00 carried into 2026-04")],
            first.Rows.Where(r => r.ResourceUuid == agent.ResourceUuid && r.Action == UsageAction.ClosedPeriod).Select(r => (r.Component, Carried(r))));
        Assert.Equal(("chat_credits", "0.00 carried into 2026-04"), first.Rows.Where(r => r.ResourceUuid == overReported.ResourceUuid && r.Action == UsageAction.ClosedPeriod).Select(r => (r.Component, Carried(r))).Single());
        foreach (var report in new[] { first, second, third })
        {
            Assert.False(report.Unfinished);
            Assert.DoesNotContain(report.Rows, r => r.Action is UsageAction.Refused or UsageAction.Failed);
            Assert.Equal(3, report.Rows.Count(r => r.Period == "2026-03" && r.Action == UsageAction.ClosedPeriod));
        }

        Assert.Equal(0, second.Posted + third.Posted);
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= LogEventLevel.Error);
        Assert.Single(ClosedMonthLogLines(agent));
        Assert.Single(ClosedMonthLogLines(overReported));

        // April's report keeps the carried credits as it grows, and when April closes in turn nothing is missing from it.
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 30, 12, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 5, 1, 0, 10, 0, TimeSpan.Zero));
        var may = await Reporter.ReportAsync();

        Assert.Equal(0, may.Posted);
        Assert.Equal(2, RefusedAsPastPeriod());
        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "6.00"), ("rag_credits", April, "5.00")], WaldurHolds(agent));
        Assert.All(may.Rows, r => Assert.Equal(UsageAction.Unchanged, r.Action));
    }

    /// <summary>
    /// East of UTC Waldur's month ends before the ledger's (at 10:00 UTC in Kiritimati, UTC+14): the ledger's month is
    /// still open when Waldur refuses it, so its rest is carried only once it ends in UTC.
    /// </summary>
    [Fact]
    public async Task East_of_utc_a_month_waldur_closed_before_the_ledgers_is_carried_once_it_ends_in_utc()
    {
        await RestartWithWaldurInAsync("Pacific/Kiritimati");
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 9, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 12, 0, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);

        var closedThere = await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        var next = await Reporter.ReportAsync();

        var waiting = Assert.Single(closedThere.Rows, r => r.Action == UsageAction.Skipped);
        Assert.Equal(("2026-03", "chat_credits"), (waiting.Period, waiting.Component));
        Assert.Contains("carried into 2026-04 once the month ends in UTC", waiting.Detail, StringComparison.Ordinal);
        Assert.Equal("2.00 carried into 2026-04", Carried(Assert.Single(next.Rows, r => r.Action == UsageAction.ClosedPeriod)));
        Assert.Equal(["2026-03-01 chat_credits=2.00", "2026-04-01 chat_credits=2.00"], SetUsageBodies().Select(Sent));
        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "2.00")], WaldurHolds(agent));
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= LogEventLevel.Error);
    }

    [Fact]
    public async Task Two_reporters_racing_over_a_month_waldur_closed_carry_it_once()
    {
        // The racing reporters wait for each other at Waldur: longer than the test host's 2-second attempts.
        await RestartWithWaldurInAsync("UTC", attemptTimeout: "00:00:30");
        var agent = await _bed.AddSubscriptionAsync(_customer);
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 40, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        await Reporter.ReportAsync();
        Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 0, TimeSpan.Zero));
        await ChargeAsync(agent, ActionClass.ChatMessage, 2);
        Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        // Another replica's reporter (or a `usage report` run) over the same database and Waldur.
        var other = ActivatorUtilities.CreateInstance<UsageReporter>(_bed.Services);
        var hold = _bed.Waldur.Hold("POST", SetUsagePath);

        var racing = new[] { Task.Run(() => Reporter.ReportAsync()), Task.Run(() => other.ReportAsync()) };
        // One has sent March's total and holds the resource's usage lease; the other waits for it, then finds Waldur
        // refusing March too.
        await Eventually.TrueAsync(
            () => hold.Arrived >= 1 && _bed.Logs.Lines.Any(l => l.Contains("is being reported by another task", StringComparison.Ordinal)),
            because: "one reporter sent March's total, the other waits for its lease");
        _bed.Waldur.Heal();
        hold.Release();
        var reports = await Task.WhenAll(racing);
        var again = await Reporter.ReportAsync();

        Assert.Equal([("chat_credits", March, "2.00"), ("chat_credits", April, "2.00")], WaldurHolds(agent));
        Assert.All(SetUsageBodies().Where(b => Date(b) >= new DateTimeOffset(April.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero)),
            b => Assert.Equal("2026-04-01 chat_credits=2.00", Sent(b)));
        var carried = Assert.Single(await _bed.QueryAsync(db => db.UsageCarryovers.AsNoTracking().ToListAsync()));
        Assert.Equal((agent.ResourceUuid, "chat_credits", March, April, 2.00m), (carried.ResourceUuid, carried.Component, carried.FromPeriod, carried.IntoPeriod, carried.Credits));
        Assert.All(reports, r => Assert.Contains(r.Rows, row => row is { Period: "2026-03", Action: UsageAction.ClosedPeriod }));
        Assert.Equal(0, again.Posted);
        Assert.Single(ClosedMonthLogLines(agent));
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= LogEventLevel.Error);
    }

    private async Task ChargeAsync(Subscription agent, ActionClass action, long credits, bool whileTerminating = false)
    {
        var result = await Ledger.ChargeAsync(_customer, agent.Id, agent.OfferingUuid, action, credits, 3, Guid.NewGuid().ToString(), whileTerminating);
        Assert.Equal(ChargeStatus.Charged, result.Status);
    }

    private Task SetStateAsync(Subscription agent, SubscriptionState state) =>
        _bed.QueryAsync(async db =>
        {
            var row = await db.Subscriptions.FindAsync(agent.Id);
            row!.State = state;
            return await db.SaveChangesAsync();
        });

    /// <summary>What the ledger says Waldur should hold for the resource, in the form of <see cref="WaldurHolds"/>.</summary>
    private async Task<List<(string, DateOnly, string)>> LedgerHoldsAsync(Subscription agent, params DateOnly[] months)
    {
        var holds = new List<(string, DateOnly, string)>();
        foreach (var month in months)
        {
            var totals = await _bed.QueryAsync(db => UsageTotals.ForResourceAsync(db, agent.ResourceUuid, BillingPeriod.FromFirstDay(month), CancellationToken.None));
            holds.AddRange(totals.Select(t => (t.Key, month, UsageAmounts.Format(t.Value))));
        }

        return holds.OrderBy(h => h.Item1, StringComparer.Ordinal).ThenBy(h => h.Item2).ToList();
    }

    private List<(string, DateOnly, string)> WaldurHolds(Subscription agent) =>
        _bed.Waldur.Usages
            .Where(u => u["resource_uuid"]!.GetValue<string>() == agent.ResourceUuid.ToString())
            .Select(u => (u["type"]!.GetValue<string>(), DateOnly.Parse(u["billing_period"]!.GetValue<string>(), CultureInfo.InvariantCulture), u["usage"]!.GetValue<string>()))
            .OrderBy(u => u.Item1, StringComparer.Ordinal).ThenBy(u => u.Item2)
            .ToList();

    /// <summary>Every set_usage Waldur took (answered 201), oldest first.</summary>
    private List<JsonObject> SetUsageBodies() =>
        _bed.Waldur.Server.LogEntries
            .Where(e => e.RequestMessage.Method == "POST" && e.RequestMessage.Path == SetUsagePath && e.ResponseMessage.StatusCode is 201 && !IsInjected(e))
            .OrderBy(e => e.RequestMessage.DateTime)
            .Select(e => JsonNode.Parse(e.RequestMessage.Body!)!.AsObject())
            .ToList();

    /// <summary>How many set_usage calls Waldur refused as dated in a past billing period.</summary>
    private int RefusedAsPastPeriod() =>
        _bed.Waldur.Server.LogEntries.Count(e => e.RequestMessage.Method == "POST" && e.RequestMessage.Path == SetUsagePath && e.ResponseMessage.StatusCode is 400
            && e.ResponseMessage.BodyData?.BodyAsString?.Contains("backfilling past billing periods", StringComparison.Ordinal) == true);

    /// <summary>The log lines saying a month Waldur closed was carried for the resource.</summary>
    private IEnumerable<string> ClosedMonthLogLines(Subscription agent) =>
        _bed.Logs.Events
            .Where(e => e.Level == LogEventLevel.Information && e.MessageTemplate.Text.StartsWith("Waldur takes no more usage", StringComparison.Ordinal))
            .Select(e => e.RenderMessage())
            .Where(line => line.Contains(agent.ResourceUuid.ToString(), StringComparison.Ordinal));

    /// <summary>"2.00 carried into 2026-04", from a closed month's row.</summary>
    private static string Carried(UsageReportRow row)
    {
        Assert.Equal(UsageAction.ClosedPeriod, row.Action);
        var detail = row.Detail!;
        return detail[(detail.LastIndexOf("; ", StringComparison.Ordinal) + 2)..];
    }

    private static bool IsInjected(WireMock.Logging.ILogEntry entry) =>
        entry.ResponseMessage.BodyData?.BodyAsString?.Contains("injected failure", StringComparison.Ordinal) == true;

    private static bool IsFor(JsonObject body, Subscription agent) => body["resource"]!.GetValue<string>() == agent.ResourceUuid.ToString();

    /// <summary>A set_usage body as "2026-03-01 chat_credits=4.00 rag_credits=5.00": the UTC day of its date, then its totals.</summary>
    private static DateTimeOffset Date(JsonObject body) => DateTimeOffset.Parse(body["date"]!.GetValue<string>(), CultureInfo.InvariantCulture);

    private static string Sent(JsonObject body)
    {
        var day = DateTimeOffset.Parse(body["date"]!.GetValue<string>(), CultureInfo.InvariantCulture).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        var usages = body["usages"]!.AsArray().Select(u => $"{u!["type"]!.GetValue<string>()}={u["amount"]!.GetValue<string>()}").Order(StringComparer.Ordinal);
        return string.Join(' ', usages.Prepend(day));
    }
}
