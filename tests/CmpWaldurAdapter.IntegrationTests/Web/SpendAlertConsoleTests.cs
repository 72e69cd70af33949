using System.Net;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Credits.SpendAlerts;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>The console's Usage tab: the monthly spend alert is saved, shown and cleared; bad values change nothing; the month's spend and alerts are shown.</summary>
public sealed partial class SpendAlertConsoleTests : IAsyncLifetime
{
    private const string Refused = "The monthly spend alert must be a whole number of credits from 1 to 1000000000, or empty for no alert.";

    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(now: new DateTimeOffset(2026, 11, 20, 9, 30, 0, TimeSpan.Zero));
        _bed.Settings["Credits:SpendAlertCheckInterval"] = "01:00:00"; // the test checks when it wants
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task The_alert_is_saved_shown_with_the_months_spend_and_alerts_and_cleared()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 1000);
        using var browser = await ConsoleAsync(subscription.Id);
        var page = await browser.GetStringAsync("/console?tab=usage");
        Assert.Contains("<label for=\"spend_alert\">Monthly spend alert, credits</label>", page);
        Assert.Contains("id=\"no-spend-alerts\"", page);

        var saved = await browser.PostAsync("/console?handler=SpendAlert", Form(Antiforgery(page), " 1000 "));
        Assert.Equal(HttpStatusCode.OK, saved.StatusCode);
        Assert.Contains("reaches 50, 80 and 100 % of 1000 credits", await saved.Content.ReadAsStringAsync());
        Assert.Equal(1000, await StoredAsync(subscription.Id));

        await _bed.Services.GetRequiredService<CreditLedger>().ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 850, 1, "big");
        Assert.Equal(2, await _bed.Services.GetRequiredService<SpendAlertMonitor>().CheckAsync(CancellationToken.None));
        page = await browser.GetStringAsync("/console?tab=usage");
        Assert.Contains("value=\"1000\"", page);
        Assert.Contains("<strong id=\"spent-this-month\">850</strong> credits of the 1000 credits you are alerted at", page);
        Assert.Equal(["50", "80"], AlertRow().Matches(page).Select(m => m.Groups["threshold"].Value));
        Assert.Contains("<td>2026-11-20 09:30</td>", page);
        Assert.Contains("no webhook set", page);

        var cleared = await browser.PostAsync("/console?handler=SpendAlert", Form(Antiforgery(page), ""));
        Assert.Equal(HttpStatusCode.OK, cleared.StatusCode);
        Assert.Contains("The monthly spend alert was removed.", await cleared.Content.ReadAsStringAsync());
        Assert.Null(await StoredAsync(subscription.Id));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("+5")]
    [InlineData("1.5")]
    [InlineData("1e3")]
    [InlineData("1 000")]
    [InlineData("1000000001")]
    [InlineData("99999999999999999999999")]
    [InlineData("٣")]
    [InlineData("<script>alert(1)</script>")]
    public async Task A_bad_amount_gets_a_400_with_a_clear_message_and_changes_nothing(string credits)
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription.Id, s => s.MonthlySpendAlertCredits = 500, CancellationToken.None);
        using var browser = await ConsoleAsync(subscription.Id);
        var before = await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscription.Id, CancellationToken.None);

        var response = await browser.PostAsync("/console?handler=SpendAlert", Form(Antiforgery(await browser.GetStringAsync("/console?tab=usage")), credits));
        var page = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains($"id=\"spend_alert_error\">{Refused}", page);
        Assert.Contains("The monthly spend alert was not changed.", page);
        Assert.DoesNotContain("<script>alert(1)", page);
        var after = await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscription.Id, CancellationToken.None);
        Assert.Equal((500L, before.UpdatedAt), (after.MonthlySpendAlertCredits, after.UpdatedAt));
    }

    [Fact]
    public async Task The_largest_amount_is_accepted_and_a_form_without_the_anti_forgery_token_changes_nothing()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        using var browser = await ConsoleAsync(subscription.Id);

        Assert.Equal(HttpStatusCode.BadRequest, (await browser.PostAsync("/console?handler=SpendAlert", new FormUrlEncodedContent([new("credits", "7")]))).StatusCode);
        Assert.Null(await StoredAsync(subscription.Id));

        var page = await browser.GetStringAsync("/console?tab=usage");
        Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/console?handler=SpendAlert", Form(Antiforgery(page), "1000000000"))).StatusCode);
        Assert.Equal(1_000_000_000, await StoredAsync(subscription.Id));
    }

    private async Task<HttpClient> ConsoleAsync(Guid subscriptionId) => await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscriptionId));

    private async Task<long?> StoredAsync(Guid subscriptionId) =>
        (await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscriptionId, CancellationToken.None)).MonthlySpendAlertCredits;

    private static FormUrlEncodedContent Form(string antiforgery, string credits) => new([new("__RequestVerificationToken", antiforgery), new("credits", credits)]);

    private static string Antiforgery(string page) => ConsoleBrowser.Antiforgery(page);

    [GeneratedRegex("<tr data-threshold=\"(?<threshold>\\d+)\">")]
    private static partial Regex AlertRow();
}
