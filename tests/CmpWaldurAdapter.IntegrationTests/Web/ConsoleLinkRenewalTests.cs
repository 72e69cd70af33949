using System.Net;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class ConsoleLinkRenewalOnSqliteTests() : ConsoleLinkRenewalTests(DatabaseProvider.Sqlite);

public sealed class ConsoleLinkRenewalOnPostgresTests() : ConsoleLinkRenewalTests(DatabaseProvider.Postgres);

/// <summary>
/// The console link in HomePort never dies while the subscription lasts: a week before it expires (30-day links)
/// the report gets a fresh one of the same version, every other section kept; the old one works until it expires.
/// </summary>
public abstract class ConsoleLinkRenewalTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly TimeSpan Due = TimeSpan.FromDays(23);

    /// <summary>Now, in whole seconds (PostgreSQL keeps microseconds).</summary>
    private readonly DateTimeOffset _start = new(DateTimeOffset.UtcNow.UtcTicks / TimeSpan.TicksPerSecond * TimeSpan.TicksPerSecond, TimeSpan.Zero);
    private readonly BeforeStatement _meanwhile = new();
    private BuyerWebTestBed _bed = null!;

    private ConsoleLinkRenewal Renewal => _bed.Services.GetRequiredService<ConsoleLinkRenewal>();

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(provider, _start);
        _bed.Settings["Web:ConsoleLinkRenewalInterval"] = "01:00:00"; // the tests renew when they want
        await _bed.StartAsync(services => services.AddDatabaseInterceptor(provider, _meanwhile));
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_link_a_week_from_expiry_is_replaced_in_the_report_and_the_old_one_works_until_it_expires()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await ReportOrderAsync(subscription);
        var report = Report(subscription);
        var first = LinkIn(report);

        _bed.Clock!.Advance(Due - TimeSpan.FromMinutes(1));
        Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.Equal(report, Report(subscription));

        _bed.Clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(1, await Renewal.RenewDueAsync(CancellationToken.None));
        var renewed = Report(subscription);
        Assert.Equal(["Your agent is ready", ConsoleReportContributor.Header], renewed.Select(s => s.Header));
        Assert.Equal(report[0], renewed[0]);
        var second = LinkIn(renewed);
        Assert.NotEqual(first, second);
        Assert.Contains(_bed.Server.Logs.Events, e => e.MessageTemplate.Text.EndsWith("renewed in its Waldur report", StringComparison.Ordinal)
            && e.Properties["SubscriptionId"].ToString() == subscription.Id.ToString());
        Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.Equal(HttpStatusCode.Redirect, await OpenAsync(first));

        _bed.Clock.Advance(TimeSpan.FromDays(7));
        Assert.NotEqual(HttpStatusCode.Redirect, await OpenAsync(first));
        Assert.Equal(HttpStatusCode.Redirect, await OpenAsync(second));

        // The renewed link is renewed in turn when it is due.
        _bed.Clock.Advance(Due - TimeSpan.FromDays(7));
        Assert.Equal(1, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.NotEqual(second, LinkIn(Report(subscription)));
    }

    [Fact]
    public async Task Only_active_subscriptions_are_renewed_and_an_unrecorded_link_is_renewed_once()
    {
        var recorded = await _bed.AddSubscriptionAsync();
        await ReportOrderAsync(recorded);
        var unrecorded = await _bed.AddSubscriptionAsync(); // its link was made before issue times were kept
        var terminated = await _bed.AddSubscriptionAsync();
        await ReportOrderAsync(terminated);
        await SetStateAsync(terminated, SubscriptionState.Terminated);
        var provisioning = await _bed.AddSubscriptionAsync();
        await SetStateAsync(provisioning, SubscriptionState.Provisioning);

        _bed.Clock!.Advance(Due + TimeSpan.FromMinutes(1));

        Assert.Equal(2, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.Equal(2, Submits(recorded)); // the order's, the renewal's
        Assert.Equal(ConsoleReportContributor.Header, Assert.Single(Report(unrecorded)).Header);
        Assert.Equal(1, Submits(terminated));
        Assert.Equal(0, Submits(provisioning));
        Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None));
        _bed.Waldur.AssertRequestsConformToSpec();
    }

    [Fact]
    public async Task One_writer_of_a_report_at_a_time_an_order_waits_for_a_renewal_and_a_renewal_skips_a_report_being_written()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await ReportOrderAsync(subscription);
        _bed.Clock!.Advance(Due + TimeSpan.FromMinutes(1));
        var leases = _bed.Services.GetRequiredService<DatabaseLeases>();
        var lease = ReportLease.Name(subscription.ResourceUuid);
        var holding = await leases.TryAcquireWaitingAsync(lease, TimeSpan.FromMinutes(1), TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(holding);

        Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None));
        await Assert.ThrowsAsync<TransientProvisioningException>(() => ReportOrderAsync(subscription)); // retried by the order pipeline
        using (var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id)))
        {
            var busy = await browser.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(await browser.GetStringAsync("/console")));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
            Assert.Contains("being updated right now", await busy.Content.ReadAsStringAsync());
        }

        Assert.Equal(1, Submits(subscription));

        await leases.ReleaseAsync(lease, holding);
        Assert.Equal(1, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.Equal(2, Submits(subscription));

        // An order that finds the report being written waits for it, then sends its own.
        holding = await leases.TryAcquireWaitingAsync(lease, TimeSpan.FromMinutes(1), TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(holding);
        var order = ReportOrderAsync(subscription);
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.False(order.IsCompleted);
        await leases.ReleaseAsync(lease, holding);
        await order;
        Assert.Equal(3, Submits(subscription));
    }

    [Fact]
    public async Task An_orders_report_schedules_its_links_renewal_only_once_waldur_holds_it()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        _bed.Waldur.Upstream.Fail("POST", $"/api/marketplace-provider-resources/{subscription.ResourceUuid}/submit_report/", 400);
        await Assert.ThrowsAnyAsync<Exception>(() => ReportOrderAsync(subscription));
        Assert.Null((await Store.GetAsync(subscription.Id, CancellationToken.None)).ConsoleLinkRenewAt);

        _bed.Clock!.Advance(TimeSpan.FromMinutes(3));
        await ReportOrderAsync(subscription);
        Assert.Equal(_bed.Clock.GetUtcNow() + Due, (await Store.GetAsync(subscription.Id, CancellationToken.None)).ConsoleLinkRenewAt);
    }

    [Fact]
    public async Task Link_bookkeeping_leaves_the_buyers_last_change_and_racing_first_writes_of_a_settings_row_all_land_logging_no_error()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Store.UpdateAsync(subscription.Id, s => s.WidgetDailyMessageCap = 9, CancellationToken.None);
        var changed = (await Store.GetAsync(subscription.Id, CancellationToken.None)).UpdatedAt;
        _bed.Clock!.Advance(TimeSpan.FromHours(1));
        await ReportOrderAsync(subscription);
        Assert.Equal(changed, (await Store.GetAsync(subscription.Id, CancellationToken.None)).UpdatedAt);

        // Another replica makes the row (its own first change) after this change found none, just before it inserts.
        var fresh = await _bed.AddSubscriptionAsync();
        _meanwhile.Stage(new Regex("INSERT INTO \"?buyer_web_settings\\b"),
            () => _bed.Services.GetRequiredService<ConsoleAccess>().RenewLinkAtAsync(fresh.Id, _start, CancellationToken.None));
        await Store.UpdateAsync(fresh.Id, s => s.WidgetDailyMessageCap = 7, CancellationToken.None);
        Assert.Equal(1, _meanwhile.Ran);
        var row = await Store.GetAsync(fresh.Id, CancellationToken.None);
        Assert.Equal((7, (DateTimeOffset?)_start), (row.WidgetDailyMessageCap, row.ConsoleLinkRenewAt));
        // Two first changes at once are routine, not a database error.
        Assert.DoesNotContain(_bed.Server.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }

    private BuyerWebStore Store => _bed.Services.GetRequiredService<BuyerWebStore>();

    [Fact]
    public async Task Waldur_down_or_refusing_the_adapter_renews_nothing_until_it_is_back_and_a_refused_resource_does_not_hold_up_the_others()
    {
        var gone = await _bed.AddSubscriptionAsync();
        await ReportOrderAsync(gone);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(5)); // gone's link is the older one: it heads the batch
        var subscription = await _bed.AddSubscriptionAsync();
        await ReportOrderAsync(subscription);
        var report = Report(subscription);
        _bed.Clock.Advance(Due + TimeSpan.FromMinutes(1));

        foreach (var status in new[] { 503, 401, 403 })
        {
            _bed.Waldur.Upstream.Break("GET", "/api/marketplace-provider-resources/[^/]+/", status);
            var asked = Gets(subscription);
            Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None));
            Assert.Equal(asked, Gets(subscription)); // the run stopped at the first resource
            _bed.Clock.Advance(TimeSpan.FromMinutes(1));
            Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None)); // that one went back in line: the next is tried
            Assert.True(Gets(subscription) > asked);
            Assert.Equal(report, Report(subscription));
            _bed.Waldur.Upstream.Heal();
            _bed.Clock.Advance(ConsoleLinkRenewal.PausedRetryDelay);
        }

        _bed.Waldur.Upstream.Fail("GET", $"/api/marketplace-provider-resources/{gone.ResourceUuid}/", 404, times: 10);
        Assert.Equal(1, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.NotEqual(report, Report(subscription));
        Assert.Contains(_bed.Server.Logs.Events, e => e.Level == Serilog.Events.LogEventLevel.Warning
            && e.MessageTemplate.Text.Contains("not renewed", StringComparison.Ordinal) && e.Properties["SubscriptionId"].ToString() == gone.Id.ToString());
        var refused = Gets(gone);
        Assert.Equal(0, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.Equal(refused, Gets(gone));

        // The refused resource is tried again a day later.
        _bed.Waldur.Upstream.Heal();
        _bed.Clock.Advance(ConsoleLinkRenewal.RefusedRetryDelay);
        Assert.Equal(1, await Renewal.RenewDueAsync(CancellationToken.None));
        Assert.Equal(ConsoleReportContributor.Header, Report(gone)[^1].Header);
    }

    private int Gets(Subscription subscription) =>
        _bed.Waldur.Upstream.Count("GET", $"/api/marketplace-provider-resources/{subscription.ResourceUuid}/");

    private int Submits(Subscription subscription) =>
        _bed.Waldur.Upstream.Count("POST", $"/api/marketplace-provider-resources/{subscription.ResourceUuid}/submit_report/");

    /// <summary>The report a Create order ends with (summary and console link), as the order pipeline submits it.</summary>
    private async Task ReportOrderAsync(Subscription subscription)
    {
        var order = new OrderRecord { OrderUuid = Guid.NewGuid(), Type = OrderType.Create, ResourceUuid = subscription.ResourceUuid, Notes = "Langflow flow created" };
        await _bed.Services.GetRequiredService<SubscriptionReporter>().SubmitAsync(subscription, order, "Customer support agent", CancellationToken.None);
    }

    private async Task SetStateAsync(Subscription subscription, SubscriptionState state)
    {
        await using var db = await _bed.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        await db.Subscriptions.Where(s => s.Id == subscription.Id).ExecuteUpdateAsync(u => u.SetProperty(s => s.State, state));
    }

    private List<(string Header, string Body)> Report(Subscription subscription) =>
        _bed.Waldur.Resource(subscription.ResourceUuid)["report"]?.AsArray()
            .Select(s => (s!["header"]!.GetValue<string>(), s["body"]!.GetValue<string>())).ToList() ?? [];

    private static Uri LinkIn(List<(string Header, string Body)> report) =>
        ConsoleBrowser.LinkIn(report.Single(s => s.Header == ConsoleReportContributor.Header).Body);

    private async Task<HttpStatusCode> OpenAsync(Uri link)
    {
        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        return (await browser.GetAsync(link.PathAndQuery)).StatusCode;
    }
}
