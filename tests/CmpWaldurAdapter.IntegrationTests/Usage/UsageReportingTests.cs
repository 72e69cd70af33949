using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

/// <summary>Usage reporting against a WireMock Waldur; every request is checked against the pinned spec on dispose.</summary>
public sealed class UsageReportingTests : IAsyncLifetime
{
    private const string SetUsagePath = "/api/marketplace-component-usages/set_usage/";
    private static readonly DateTimeOffset March20 = new(2026, 3, 20, 10, 0, 0, TimeSpan.Zero);

    private CreditTestBed _bed = null!;
    private Subscription _subscription = null!;
    private int _requests;

    private UsageReporter Reporter => _bed.Services.GetRequiredService<UsageReporter>();

    private CreditLedger Ledger => _bed.Ledger;

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite, March20);
        await _bed.StartAsync();
        _subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(_subscription.CustomerId, 10_000, "test funding");
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Changed_usage_posts_exactly_the_month_to_date_totals_of_the_components_that_differ()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await ChargeAsync(ActionClass.RagDocument, 5);

        var first = await Reporter.ReportAsync();
        await ChargeAsync(ActionClass.ChatMessage, 2);
        var second = await Reporter.ReportAsync();

        var posts = SetUsageBodies();
        Assert.Equal(2, posts.Count);
        Assert.Equal(_subscription.ResourceUuid.ToString(), posts[0]["resource"]!.GetValue<string>());
        Assert.Equal(new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero), DateTimeOffset.Parse(posts[0]["date"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal([("chat_credits", "4.00"), ("rag_credits", "5.00")], Usages(posts[0]));
        Assert.Equal([("chat_credits", "6.00")], Usages(posts[1]));
        Assert.Equal(2, first.Posted);
        Assert.Equal(1, second.Posted);
        Assert.Contains(second.Rows, r => r is { Component: "rag_credits", Action: UsageAction.Unchanged, Ours: 5m, Waldur: 5m });
        Assert.Equal([("chat_credits", "2026-03-01", "6.00"), ("rag_credits", "2026-03-01", "5.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_newer_total_reported_while_a_run_is_under_way_is_not_overwritten_with_the_runs_older_snapshot()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await ChargeAsync(ActionClass.ChatMessage, 2);
        // A Terminate order's final report (another replica) sends the total the ledger reaches during this run.
        _bed.Waldur.SeedUsage(_subscription.ResourceUuid, "chat_credits", new DateOnly(2026, 3, 1), "6.00");
        var charged = 0;
        _bed.Waldur.Observe = (message, _) =>
        {
            // The run has read the ledger (4 credits) and now reads Waldur; the last message is charged meanwhile.
            if (message.Method == "GET" && message.Path.StartsWith("/api/marketplace-component-usages/", StringComparison.Ordinal) && Interlocked.Exchange(ref charged, 1) == 0)
            {
                ChargeAsync(ActionClass.ChatMessage, 2).GetAwaiter().GetResult();
            }
        };

        var report = await Reporter.ReportAsync();

        Assert.Equal(1, charged);
        Assert.Empty(SetUsageBodies());
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Action: UsageAction.Unchanged, Ours: 6m, Waldur: 6m });
        Assert.Equal([("chat_credits", "2026-03-01", "6.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_total_reported_after_the_run_read_waldur_is_not_replaced_by_the_runs_older_one()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await ChargeAsync(ActionClass.ChatMessage, 2);
        var reported = 0;
        _bed.Waldur.Observe = (message, _) =>
        {
            // Once the run has read both sides (ledger 4, Waldur nothing), the last message is charged and a Terminate
            // order's final report sends the new total.
            if (message.Method == "GET" && message.Path.StartsWith("/api/marketplace-component-usages/", StringComparison.Ordinal) && Interlocked.Exchange(ref reported, 1) == 0)
            {
                ChargeAsync(ActionClass.ChatMessage, 2).GetAwaiter().GetResult();
                _bed.Waldur.SeedUsage(_subscription.ResourceUuid, "chat_credits", new DateOnly(2026, 3, 1), "6.00");
            }
        };

        await Reporter.ReportAsync();

        Assert.Equal(1, reported);
        Assert.Equal([("chat_credits", "2026-03-01", "6.00")], WaldurHolds());
    }

    [Fact]
    public async Task Unchanged_usage_posts_nothing()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        var other = await _bed.AddSubscriptionAsync(customer: _subscription.CustomerId);
        await Ledger.ChargeAsync(other.CustomerId, other.Id, other.OfferingUuid, ActionClass.ImageGeneration, 10, 3, "image");
        // Waldur already holds the other resource's total (reported by an earlier run or replica).
        _bed.Waldur.SeedUsage(other.ResourceUuid, "image_credits", new DateOnly(2026, 3, 1), "10.00");

        await Reporter.ReportAsync();
        var again = await Reporter.ReportAsync();

        Assert.Single(SetUsageBodies());
        Assert.Equal(_subscription.ResourceUuid.ToString(), SetUsageBodies()[0]["resource"]!.GetValue<string>());
        Assert.Equal(0, again.Posted);
        Assert.All(again.Rows, r => Assert.Equal(UsageAction.Unchanged, r.Action));
        Assert.False(again.Unfinished);
    }

    [Fact]
    public async Task Each_month_is_reported_under_its_own_first_day_and_old_months_drop_out()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 50, 0, TimeSpan.Zero));
        await ChargeAsync(ActionClass.ChatMessage, 2);
        var hold = await Ledger.ReserveAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.VoiceInteraction, 2, 3, "call");
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        await Ledger.SettleAsync(hold.ReservationId!.Value);
        await ChargeAsync(ActionClass.ImageGeneration, 10);

        await Reporter.ReportAsync();
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 5, 2, 8, 0, 0, TimeSpan.Zero));
        await ChargeAsync(ActionClass.ChatMessage, 2);
        _requests = _bed.Waldur.Requests.Count();
        await Reporter.ReportAsync();

        Assert.Equal(
            [("chat_credits", "2026-03-01", "2.00"), ("chat_credits", "2026-05-01", "2.00"), ("image_credits", "2026-04-01", "10.00"), ("voice_credits", "2026-04-01", "2.00")],
            WaldurHolds());
        var dates = SetUsageBodies().Select(b => b["date"]!.GetValue<string>()[..10]).ToList();
        Assert.Equal(["2026-03-01", "2026-04-01", "2026-05-01"], dates);
        // The last run looked at April and May only (May's resource read again under its lease before the send).
        var periodsAsked = _bed.Waldur.Requests.Skip(_requests).Where(r => r.Method == "GET").Select(r => r.Query!["billing_period"].Single()).Distinct().ToList();
        Assert.Equal(["2026-04-01", "2026-05-01"], periodsAsked);
    }

    [Fact]
    public async Task A_month_that_rolls_over_during_the_run_skips_the_resource_until_the_next_run()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 0, TimeSpan.Zero));
        await ChargeAsync(ActionClass.ChatMessage, 2);
        _bed.Waldur.Observe = (request, _) =>
        {
            if (request.Method == "GET" && request.Path == "/api/marketplace-component-usages/")
            {
                _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 0, 30, TimeSpan.Zero));
            }
        };

        var skipped = await Reporter.ReportAsync();
        _bed.Waldur.Observe = null;
        var next = await Reporter.ReportAsync();

        Assert.True(skipped.Unfinished);
        Assert.Contains(skipped.Rows, r => r is { Action: UsageAction.Skipped, Period: "2026-03" });
        Assert.Equal(1, next.Posted);
        Assert.Single(SetUsageBodies());
        Assert.Equal([("chat_credits", "2026-03-01", "2.00")], WaldurHolds());
    }

    [Fact]
    public async Task Waldur_failing_loses_nothing_the_next_run_sends_the_exact_totals()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await ChargeAsync(ActionClass.RagDocument, 5);
        _bed.Waldur.Fail("POST", SetUsagePath, 503, times: 10);

        var failed = await Reporter.ReportAsync();
        var heldAfterFailure = _bed.Waldur.Usages.Count;
        _bed.Waldur.Heal();
        _bed.Waldur.Fail("GET", "/api/marketplace-component-usages/", 502, times: 10);
        var unreadable = await Reporter.ReportAsync();
        _bed.Waldur.Heal();
        await ChargeAsync(ActionClass.ChatMessage, 2);
        var recovered = await Reporter.ReportAsync();

        Assert.True(failed.Unfinished);
        var notSent = failed.Rows.Where(r => r.Action == UsageAction.Failed).ToList();
        Assert.Equal(["chat_credits", "rag_credits"], notSent.Select(r => r.Component));
        Assert.All(notSent, r => Assert.Contains("503", r.Detail));
        Assert.Equal(0, heldAfterFailure);
        Assert.True(unreadable.Unfinished);
        Assert.Equal(2, recovered.Posted);
        Assert.False(recovered.Unfinished);
        Assert.Equal([("chat_credits", "2026-03-01", "4.00"), ("rag_credits", "2026-03-01", "5.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_dry_run_or_a_single_period_sends_only_what_it_says()
    {
        // Waldur takes a past month's total from a staff token (a service provider's is carried instead: UsageCarryoverTests).
        _bed.Waldur.TokenIsStaff = true;
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 2, 10, 0, 0, 0, TimeSpan.Zero));
        await ChargeAsync(ActionClass.ChatMessage, 2);
        _bed.Clock.SetUtcNow(March20);
        await ChargeAsync(ActionClass.RagDocument, 5);

        var dry = await Reporter.ReportAsync(dryRun: true);
        var february = await Reporter.ReportAsync(BillingPeriod.Of(2026, 2));

        Assert.Equal(2, dry.Rows.Count(r => r.Action == UsageAction.WouldPost));
        Assert.Equal(1, february.Posted);
        Assert.Equal([("chat_credits", "2026-02-01", "2.00")], WaldurHolds());
    }

    [Fact]
    public async Task Terminated_subscriptions_are_still_reported_for_their_months()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await _bed.QueryAsync(async db =>
        {
            var row = await db.Subscriptions.FindAsync(_subscription.Id);
            row!.State = SubscriptionState.Terminated;
            return await db.SaveChangesAsync();
        });

        var report = await Reporter.ReportAsync();

        Assert.Equal(1, report.Posted);
        Assert.Equal([("chat_credits", "2026-03-01", "2.00")], WaldurHolds());
    }

    [Fact]
    public async Task Waldur_holding_more_than_the_ledger_is_corrected_to_the_ledger()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        _bed.Waldur.SeedUsage(_subscription.ResourceUuid, "chat_credits", new DateOnly(2026, 3, 1), "7.50");

        var report = await Reporter.ReportAsync();

        Assert.Equal(1, report.Posted);
        Assert.Equal([("chat_credits", "2026-03-01", "2.00")], WaldurHolds());
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Ours: 2m, Waldur: 7.5m, Action: UsageAction.Posted });
    }

    [Fact]
    public async Task Every_request_to_waldur_conforms_to_the_pinned_spec()
    {
        await ChargeAsync(ActionClass.ChatMessage, 2);
        await ChargeAsync(ActionClass.VoiceInteraction, 2);

        await Reporter.ReportAsync();

        Assert.True(_bed.Waldur.Count("POST", SetUsagePath) == 1);
        Assert.True(_bed.Waldur.Server.LogEntries.Any());
        _bed.Waldur.AssertRequestsConformToSpec();
    }

    private async Task ChargeAsync(ActionClass action, long credits)
    {
        var result = await Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, action, credits, 3, Guid.NewGuid().ToString());
        Assert.Equal(ChargeStatus.Charged, result.Status);
    }

    private List<JsonObject> SetUsageBodies() =>
        _bed.Waldur.Requests.Where(r => r.Method == "POST" && r.Path == SetUsagePath).OrderBy(r => r.DateTime).Select(r => JsonNode.Parse(r.Body!)!.AsObject()).ToList();

    private static List<(string, string)> Usages(JsonObject body) =>
        body["usages"]!.AsArray().Select(u => (u!["type"]!.GetValue<string>(), u["amount"]!.GetValue<string>())).OrderBy(u => u.Item1, StringComparer.Ordinal).ToList();

    private List<(string, string, string)> WaldurHolds() =>
        _bed.Waldur.Usages
            .Where(u => u["resource_uuid"]!.GetValue<string>() == _subscription.ResourceUuid.ToString())
            .Select(u => (u["type"]!.GetValue<string>(), u["billing_period"]!.GetValue<string>(), u["usage"]!.GetValue<string>()))
            .OrderBy(u => u.Item1, StringComparer.Ordinal).ThenBy(u => u.Item2, StringComparer.Ordinal)
            .ToList();
}
