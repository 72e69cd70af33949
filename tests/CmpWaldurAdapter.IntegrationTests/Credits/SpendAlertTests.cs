using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Credits.SpendAlerts;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace CmpWaldurAdapter.IntegrationTests.Credits;

public sealed class SpendAlertOnPostgresTests() : SpendAlertTests(DatabaseProvider.Postgres);

public sealed class SpendAlertOnSqliteTests() : SpendAlertTests(DatabaseProvider.Sqlite)
{
    [Fact]
    public async Task The_scheduled_job_checks_by_itself()
    {
        await using var bed = await BuyerWebTestBed.CreateAsync();
        bed.Settings["Credits:SpendAlertCheckInterval"] = "00:00:00.500";
        await bed.StartAsync();
        var subscription = await bed.AddSubscriptionAsync(credits: 100);
        await bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription.Id, s => s.MonthlySpendAlertCredits = 10, CancellationToken.None);

        await bed.Services.GetRequiredService<CreditLedger>().ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 10, 1, "all-of-it");

        await Eventually.TrueAsync(async () => await bed.QueryAsync(db => db.SpendAlerts.CountAsync()) == 3, because: "the job records the three thresholds");
    }
}

/// <summary>
/// Monthly spend alerts: each threshold (50, 80, 100 % of the buyer's amount) is recorded and sent once a month as the
/// subscription's charges cross it, through the escalation webhook's signed, retried outbox when one is set. The
/// tests run the check themselves on a clock they set; the scheduled job stays out of the way.
/// </summary>
public abstract partial class SpendAlertTests(DatabaseProvider provider) : IAsyncLifetime
{
    /// <summary>Mid-March 2026, noon UTC.</summary>
    private static readonly DateTimeOffset Start = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private readonly BeforeStatement _meanwhile = new();
    private BuyerWebTestBed _bed = null!;
    private WireMockServer _receiver = null!;
    private int _requests;

    private SpendAlertMonitor Monitor => _bed.Services.GetRequiredService<SpendAlertMonitor>();

    private CreditLedger Ledger => _bed.Services.GetRequiredService<CreditLedger>();

    public async Task InitializeAsync()
    {
        _receiver = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"], StartAdminInterface = false });
        _bed = await BuyerWebTestBed.CreateAsync(provider, Start);
        _bed.Settings["Credits:SpendAlertCheckInterval"] = "01:00:00";
        _bed.Settings["Handoff:DeliveryInterval"] = "01:00:00";
        _bed.Settings["Handoff:FirstRetryDelay"] = "00:00:30";
        await _bed.StartAsync(services => services.AddDatabaseInterceptor(provider, _meanwhile));
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _receiver.Stop();
    }

    [Fact]
    public async Task Each_threshold_is_alerted_once_as_the_months_spend_crosses_it_and_a_new_month_starts_over()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        await AlertAtAsync(subscription, 100);

        await ChargeAsync(subscription, 49);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(subscription, 1);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(subscription, 29);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(subscription, 1);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(subscription, 25);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(subscription, 100);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        var march = await AlertsAsync(subscription, new DateOnly(2026, 3, 1));
        Assert.Equal([(50, 100L, 50L), (80, 100L, 80L), (100, 100L, 105L)], march.Select(a => (a.ThresholdPercent, a.AlertCredits, a.SpentCredits)));
        Assert.All(march, a => Assert.Equal(Start, a.DetectedAt));
        Assert.Equal(0, await _bed.QueryAsync(db => db.HandoffDeliveries.CountAsync())); // no webhook set: recorded and logged only
        var logged = _bed.Server.Logs.Events.Where(e => e.MessageTemplate.Text.Contains("monthly spend alert", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, logged.Count);
        Assert.All(logged, e => Assert.Equal(Serilog.Events.LogEventLevel.Information, e.Level));
        Assert.Equal(["50", "80", "100"], logged.Select(e => e.Properties["ThresholdPercent"].ToString()));

        // April: nothing spent yet, nothing alerted; its own spend crosses its own thresholds.
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 0, 30, TimeSpan.Zero));
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(subscription, 60);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        var april = Assert.Single(await AlertsAsync(subscription, new DateOnly(2026, 4, 1)));
        Assert.Equal((50, 60L), (april.ThresholdPercent, april.SpentCredits));
        Assert.Equal(3, (await AlertsAsync(subscription, new DateOnly(2026, 3, 1))).Count);
    }

    [Fact]
    public async Task Charges_after_a_months_last_check_are_alerted_for_that_month_by_the_first_checks_of_the_next()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        await AlertAtAsync(subscription, 100);
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 0, TimeSpan.Zero));
        await ChargeAsync(subscription, 50);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 50, TimeSpan.Zero));
        await ChargeAsync(subscription, 50); // after March's last check

        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 0, 10, TimeSpan.Zero));
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription.Id, s => s.AllowedDomains = "shop.example.com", CancellationToken.None); // not the amount
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 0, 20, TimeSpan.Zero));
        Assert.Equal(2, await Monitor.CheckAsync(CancellationToken.None));
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        var march = await AlertsAsync(subscription, new DateOnly(2026, 3, 1));
        Assert.Equal([(50, 50L), (80, 100L), (100, 100L)], march.Select(a => (a.ThresholdPercent, a.SpentCredits)));
        Assert.Empty(await AlertsAsync(subscription, new DateOnly(2026, 4, 1)));

        // An amount set in April is April's: the catch-up does not measure March against it.
        var lowered = await _bed.AddSubscriptionAsync(credits: 1000);
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 0, 0, TimeSpan.Zero));
        await AlertAtAsync(lowered, 100);
        await ChargeAsync(lowered, 40);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 20, 0, TimeSpan.Zero));
        await AlertAtAsync(lowered, 50);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        Assert.Empty(await AlertsAsync(lowered, new DateOnly(2026, 3, 1)));

        // Past the catch-up hour only April is checked: an amount lowered now does not reach back into March.
        var quiet = await _bed.AddSubscriptionAsync(credits: 1000);
        await AlertAtAsync(quiet, 100);
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 0, 0, TimeSpan.Zero));
        await ChargeAsync(quiet, 40);
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 1, 0, 0, TimeSpan.Zero));
        await AlertAtAsync(quiet, 50);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        Assert.Empty(await AlertsAsync(quiet, new DateOnly(2026, 3, 1)));
    }

    [Fact]
    public async Task Raising_the_amount_mid_month_sends_nothing_again_and_lowering_it_sends_only_the_newly_crossed_thresholds()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        await AlertAtAsync(subscription, 100);
        await ChargeAsync(subscription, 60);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None)); // 50 %

        // Lowered to 70 with nothing more spent: 60 is 86 % of it, so 80 % is newly crossed, and 50 % is not repeated.
        await AlertAtAsync(subscription, 70);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));

        // Raised to 200: 120 spent is 60 % of it, and 50 % was alerted this month already.
        await AlertAtAsync(subscription, 200);
        await ChargeAsync(subscription, 60);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        // Lowered to 120: 100 % is newly crossed; 50 and 80 % stay alerted once.
        await AlertAtAsync(subscription, 120);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        var alerts = await AlertsAsync(subscription, new DateOnly(2026, 3, 1));
        Assert.Equal([(50, 100L, 60L), (80, 70L, 60L), (100, 120L, 120L)], alerts.Select(a => (a.ThresholdPercent, a.AlertCredits, a.SpentCredits)));
    }

    [Fact]
    public async Task The_webhook_receives_the_signed_event_again_until_it_accepts_it()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        var secret = (await _bed.Services.GetRequiredService<HandoffService>().SetWebhookAsync(subscription.Id, new Uri(_receiver.Url + "/hooks/spend"), CancellationToken.None)).Secret!;
        _receiver.Given(Request.Create().WithPath("/hooks/spend").UsingPost()).InScenario("down").WillSetStateTo("refused-once")
            .RespondWith(Response.Create().WithStatusCode(503));
        _receiver.Given(Request.Create().WithPath("/hooks/spend").UsingPost()).InScenario("down").WhenStateIs("refused-once")
            .RespondWith(Response.Create().WithStatusCode(204));
        await AlertAtAsync(subscription, 10);
        await ChargeAsync(subscription, 5);

        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        var sender = _bed.Services.GetRequiredService<HandoffWebhookSender>();
        Assert.Equal(0, await sender.DeliverDueAsync(CancellationToken.None));
        var failed = await _bed.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().SingleAsync());
        Assert.Equal(1, failed.Attempts);
        Assert.Null(failed.ConversationId);
        Assert.Contains("503", failed.LastError);
        Assert.Equal(0, await sender.DeliverDueAsync(CancellationToken.None)); // not due before its backoff

        _bed.Clock!.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(1, await sender.DeliverDueAsync(CancellationToken.None));
        Assert.Equal(0, await sender.DeliverDueAsync(CancellationToken.None));

        var requests = _receiver.LogEntries.Select(e => e.RequestMessage).ToList();
        Assert.Equal(2, requests.Count);
        Assert.Single(requests.Select(r => r.Body).Distinct()); // the same event each time, freshly signed
        var last = requests[^1];
        var signature = last.Headers![HandoffWebhookSender.SignatureHeader].Single();
        var timestamp = long.Parse(signature.Split(',')[0]["t=".Length..], CultureInfo.InvariantCulture);
        Assert.Equal(HandoffWebhookSender.Sign(secret, timestamp, last.Body!), signature);
        Assert.NotEqual(HandoffWebhookSender.Sign(secret + "x", timestamp, last.Body!), signature);

        var alert = Assert.Single(await AlertsAsync(subscription, new DateOnly(2026, 3, 1)));
        Assert.Equal(alert.Id.ToString(), last.Headers["X-Cmp-Delivery"].Single());
        var body = JsonNode.Parse(last.Body!)!.AsObject();
        Assert.Equal(
            ["id", "type", "subscription", "period", "threshold_percent", "alert_credits", "spent_credits", "detected_at", "link"],
            body.Select(p => p.Key));
        Assert.Equal(alert.Id, body["id"]!.GetValue<Guid>());
        Assert.Equal("spend.threshold_reached", body["type"]!.GetValue<string>());
        Assert.Equal(subscription.ResourceUuid, body["subscription"]!.GetValue<Guid>());
        Assert.Equal("2026-03", body["period"]!.GetValue<string>());
        Assert.Equal(50, body["threshold_percent"]!.GetValue<int>());
        Assert.Equal(10, body["alert_credits"]!.GetValue<long>());
        Assert.Equal(5, body["spent_credits"]!.GetValue<long>());
        Assert.Equal(Start, body["detected_at"]!.GetValue<DateTimeOffset>());
        Assert.Equal(new Uri(_bed.Url, $"console?tab=usage&resource={subscription.ResourceUuid:N}").ToString(), body["link"]!.GetValue<string>());

        // An alert is not an escalation: the escalations list stays empty.
        using var api = _bed.Server.CreateClient();
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await _bed.SecretKeyAsync(subscription.Id));
        Assert.Empty(JsonNode.Parse(await api.GetStringAsync("/v1/handoff/escalations"))!["data"]!.AsArray());
    }

    [Fact]
    public async Task Subscriptions_without_an_alert_are_not_checked_and_another_subscriptions_spend_does_not_count()
    {
        var watched = await _bed.AddSubscriptionAsync(credits: 10_000);
        var sibling = await SiblingOfAsync(watched); // same organization, no alert, a webhook set
        await _bed.Services.GetRequiredService<HandoffService>().SetWebhookAsync(sibling.Id, new Uri(_receiver.Url + "/hooks/sibling"), CancellationToken.None);

        await ChargeAsync(sibling, 5000);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        await AlertAtAsync(watched, 100);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None)); // the sibling's 5000 are not the watched one's
        await ChargeAsync(watched, 49);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));
        await ChargeAsync(watched, 1);
        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));

        // Cleared: nothing more is alerted, however much is spent.
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(watched.Id, s => s.MonthlySpendAlertCredits = null, CancellationToken.None);
        await ChargeAsync(watched, 500);
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        Assert.Equal([watched.Id], await _bed.QueryAsync(db => db.SpendAlerts.Select(a => a.SubscriptionId).ToListAsync()));
        Assert.Equal(0, await _bed.QueryAsync(db => db.HandoffDeliveries.CountAsync()));
        Assert.Empty(_receiver.LogEntries);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(-5L)]
    public async Task A_subscription_with_an_amount_below_one_credit_written_outside_the_console_does_not_stop_another_ones_alerts(long bad)
    {
        var broken = await _bed.AddSubscriptionAsync(credits: 1000);
        var healthy = await _bed.AddSubscriptionAsync(credits: 1000);
        await AlertAtAsync(broken, 100);
        await AlertAtAsync(healthy, 100);
        // The console refuses such an amount; a row written directly in the database can still hold one.
        await _bed.QueryAsync(db => db.BuyerWebSettings.Where(s => s.SubscriptionId == broken.Id)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.MonthlySpendAlertCredits, bad)));
        await ChargeAsync(broken, 60);
        await ChargeAsync(healthy, 60);

        Assert.Equal(1, await Monitor.CheckAsync(CancellationToken.None));
        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        Assert.Equal([(healthy.Id, 50)], await _bed.QueryAsync(db => db.SpendAlerts.Select(a => new ValueTuple<Guid, int>(a.SubscriptionId, a.ThresholdPercent)).ToListAsync()));
        // Such an amount is no alert, not a failure to warn about each minute.
        Assert.DoesNotContain(_bed.Server.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Warning && e.MessageTemplate.Text.Contains("spend alert", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Two_checks_racing_record_each_threshold_once()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        await _bed.Services.GetRequiredService<HandoffService>().SetWebhookAsync(subscription.Id, new Uri(_receiver.Url + "/hooks/race"), CancellationToken.None);
        await AlertAtAsync(subscription, 100);
        await ChargeAsync(subscription, 100);

        var recorded = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => Monitor.CheckAsync(CancellationToken.None))));

        Assert.Equal(3, recorded.Sum());
        Assert.Equal([50, 80, 100], (await AlertsAsync(subscription, new DateOnly(2026, 3, 1))).Select(a => a.ThresholdPercent));
        Assert.Equal(3, await _bed.QueryAsync(db => db.HandoffDeliveries.CountAsync())); // one delivery per recorded alert
    }

    [Fact]
    public async Task A_threshold_another_replica_records_between_the_checks_look_and_its_insert_is_left_to_it_with_no_database_error()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        await _bed.Services.GetRequiredService<HandoffService>().SetWebhookAsync(subscription.Id, new Uri(_receiver.Url + "/hooks/race"), CancellationToken.None);
        await AlertAtAsync(subscription, 100);
        await ChargeAsync(subscription, 50);
        var theirs = Guid.NewGuid();
        // This check has found the 50 % threshold not yet recorded; before it records it, another replica's check does.
        _meanwhile.Stage(WebhookLookup(), () => _bed.QueryAsync(db =>
        {
            db.SpendAlerts.Add(new SpendAlert
            {
                Id = theirs, SubscriptionId = subscription.Id, Period = new DateOnly(2026, 3, 1), ThresholdPercent = 50, AlertCredits = 100, SpentCredits = 50, DetectedAt = Start,
            });
            return db.SaveChangesAsync();
        }));

        Assert.Equal(0, await Monitor.CheckAsync(CancellationToken.None));

        Assert.Equal(1, _meanwhile.Ran);
        Assert.Equal(theirs, Assert.Single(await AlertsAsync(subscription, new DateOnly(2026, 3, 1))).Id);
        Assert.Equal(0, await _bed.QueryAsync(db => db.HandoffDeliveries.CountAsync())); // the delivery is the other replica's to queue
        Assert.Empty(_bed.Server.Logs.DatabaseErrors());
        Assert.DoesNotContain(_bed.Server.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Warning && e.MessageTemplate.Text.Contains("spend alert", StringComparison.Ordinal));
    }

    /// <summary>The look for the subscription's webhook, made just before a threshold is recorded.</summary>
    [GeneratedRegex("""EXISTS[\s\S]*FROM "?handoff_webhooks"?""")]
    private static partial Regex WebhookLookup();

    private Task AlertAtAsync(Subscription subscription, long credits) =>
        _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription.Id, s => s.MonthlySpendAlertCredits = credits, CancellationToken.None);

    private async Task ChargeAsync(Subscription subscription, long credits)
    {
        var charged = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, credits, 1, $"charge-{Interlocked.Increment(ref _requests)}");
        Assert.Equal(credits, charged.Credits);
    }

    private Task<List<SpendAlert>> AlertsAsync(Subscription subscription, DateOnly period) =>
        _bed.QueryAsync(db => db.SpendAlerts.AsNoTracking().Where(a => a.SubscriptionId == subscription.Id && a.Period == period).OrderBy(a => a.ThresholdPercent).ToListAsync());

    /// <summary>Another active subscription of the same organization and project.</summary>
    private async Task<Subscription> SiblingOfAsync(Subscription subscription)
    {
        var now = DateTimeOffset.UtcNow;
        var sibling = new Subscription
        {
            Id = Guid.NewGuid(),
            ResourceUuid = Guid.NewGuid(),
            OfferingUuid = subscription.OfferingUuid,
            CustomerId = subscription.CustomerId,
            WorkspaceId = subscription.WorkspaceId,
            Name = "My other agent",
            State = subscription.State,
            Configuration = subscription.Configuration,
            ConfigurationVersion = 1,
            CreatedAt = now,
            UpdatedAt = now,
        };
        await using var db = await _bed.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        db.Subscriptions.Add(sibling);
        await db.SaveChangesAsync();
        return sibling;
    }
}
