using System.Net;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// The console's links: a link naming another subscription changes nothing; replacing the console link puts the
/// new one in HomePort before the old ones stop, and a Waldur that cannot take it leaves everything as it was.
/// </summary>
public sealed class ConsoleLinkTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    /// <summary>
    /// A form posted under a link naming another subscription (say, one opened from another agent's alert) is refused
    /// before its handler runs: neither the session's own subscription nor the named one changes.
    /// </summary>
    [Theory]
    [InlineData("SpendAlert", "credits", "700")]
    [InlineData("WidgetCap", "cap", "5")]
    [InlineData("AddDomain", "domain", "shop.example.com")]
    [InlineData("CreateKey", "name", "ci")]
    [InlineData("Webhook", "url", "https://93.184.215.14/alerts")]
    [InlineData("RotateLink", "unused", "")]
    public async Task A_form_posted_under_another_subscriptions_link_is_refused_and_changes_nothing(string handler, string field, string value)
    {
        var mine = await _bed.AddSubscriptionAsync();
        var theirs = await _bed.AddSubscriptionAsync();
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id));
        var page = await browser.GetStringAsync("/console?tab=usage");
        var before = await StateAsync(mine.Id, theirs.Id);

        var refused = await browser.PostAsync($"/console?handler={handler}&resource={theirs.ResourceUuid:N}", ConsoleBrowser.Form(page, (field, value)));

        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Contains("This link belongs to another agent", await refused.Content.ReadAsStringAsync());
        Assert.Equal(before, await StateAsync(mine.Id, theirs.Id));
        Assert.DoesNotContain(_bed.Waldur.Upstream.Requests, r => r.Path.EndsWith("/submit_report/", StringComparison.Ordinal));

        // The same form under the session's own link is saved: the refusal above is the link's, not the form's.
        var accepted = await browser.PostAsync($"/console?handler={handler}&resource={mine.ResourceUuid:N}", ConsoleBrowser.Form(page, (field, value)));
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.NotEqual(before, await StateAsync(mine.Id, theirs.Id));
    }

    /// <summary>
    /// A link is a login: one sent by someone else (their own agent's) must not quietly replace the console a buyer is
    /// in, or what the buyer uploads or types next goes to that someone's agent.
    /// </summary>
    [Fact]
    public async Task A_link_of_another_subscription_asks_before_replacing_the_console_session_and_only_the_console_page_can_answer()
    {
        var mine = await NamedAsync(await _bed.AddSubscriptionAsync(), "Alpha desk", "Acme <Ltd>");
        var theirs = await NamedAsync(await _bed.AddSubscriptionAsync(), "Beta desk", "Mallory & Co");
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id));
        var theirLink = (await _bed.ConsoleLinkAsync(theirs.Id)).PathAndQuery;

        var asked = await browser.GetAsync(theirLink);
        var question = await asked.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, asked.StatusCode);
        Assert.Contains("Switch to another agent's console?", question);
        Assert.Contains("Alpha desk (Acme &lt;Ltd&gt;)", question);
        Assert.Contains("Beta desk (Mallory &amp; Co)", question);
        Assert.Contains("Alpha desk", await browser.GetStringAsync("/console"));

        // Another site cannot answer for the buyer: a form posted from there has no anti-forgery token.
        var t = Uri.UnescapeDataString(theirLink[(theirLink.IndexOf("t=", StringComparison.Ordinal) + 2)..]);
        var forged = await browser.PostAsync("/console/open", new FormUrlEncodedContent([new("t", t)]));
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        Assert.Contains("Alpha desk", await browser.GetStringAsync("/console"));

        var switched = await browser.PostAsync("/console/open", ConsoleBrowser.Form(question, ("t", t)));

        Assert.Equal(HttpStatusCode.Redirect, switched.StatusCode);
        Assert.Contains("Beta desk", await browser.GetStringAsync("/console"));
        // The session's own link, opened again, needs no question.
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(theirLink)).StatusCode);
    }

    /// <summary>
    /// A link signs straight in when no other session is live (buyers arrive from HomePort, another site), so the
    /// console says whose it is: a buyer sent someone else's link sees at once the console is not their organization's.
    /// </summary>
    [Fact]
    public async Task An_opened_console_names_its_organization_in_the_header_encoded()
    {
        var theirs = await NamedAsync(await _bed.AddSubscriptionAsync(), "Beta desk", "Mallory <b>& Co</b>");
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(theirs.Id));

        var page = await browser.GetStringAsync("/console");

        var header = Regex.Match(page, "<header class=\"agent-head\">(.*?)</header>", RegexOptions.Singleline);
        Assert.True(header.Success, "no console header in: " + page);
        var organization = Regex.Match(header.Groups[1].Value, "<p [^>]*id=\"console-organization\"[^>]*>(.*?)</p>", RegexOptions.Singleline);
        Assert.True(organization.Success, "no organization in the header: " + header.Value);
        Assert.Contains("Mallory &lt;b&gt;&amp; Co&lt;/b&gt;", organization.Groups[1].Value);
        Assert.DoesNotContain("<b>", header.Value);
        Assert.Contains("Mallory <b>& Co</b>", WebUtility.HtmlDecode(Regex.Replace(organization.Groups[1].Value, "<[^>]+>", string.Empty)));
    }

    [Fact]
    public async Task A_console_whose_organization_has_no_name_recorded_says_so_instead_of_leaving_it_blank()
    {
        var unnamed = await NamedAsync(await _bed.AddSubscriptionAsync(), "Gamma desk", string.Empty);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(unnamed.Id));

        var page = await browser.GetStringAsync("/console");

        var organization = Regex.Match(page, "<p [^>]*id=\"console-organization\"[^>]*>(.*?)</p>", RegexOptions.Singleline);
        Assert.True(organization.Success, "no organization in: " + page);
        Assert.Equal("Organization: <em>not recorded</em>", Regex.Replace(organization.Groups[1].Value.Trim(), "\\s+", " "));
    }

    [Fact]
    public async Task A_console_link_followed_from_another_site_is_asked_for_again_from_the_adapters_own_site_before_anything_is_decided()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        using var request = new HttpRequestMessage(HttpMethod.Get, (await _bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery);
        request.Headers.Add("Sec-Fetch-Site", "cross-site");

        var response = await browser.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("http-equiv=\"refresh\"", await response.Content.ReadAsStringAsync());
        Assert.False(response.Headers.Contains("Set-Cookie"), "no session before the same-site request");
    }

    [Fact]
    public async Task A_browser_that_does_not_say_where_a_navigation_began_is_still_asked_before_its_session_is_replaced()
    {
        var mine = await NamedAsync(await _bed.AddSubscriptionAsync(), "Alpha desk", "Acme");
        var theirs = await NamedAsync(await _bed.AddSubscriptionAsync(), "Beta desk", "Mallory");
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id));
        var theirLink = (await _bed.ConsoleLinkAsync(theirs.Id)).PathAndQuery;

        // From another site, without Sec-Fetch-Site: the Lax marker comes along, the Strict session cookie does not.
        var bounced = await SendWithMarkerOnlyAsync(theirLink);

        Assert.Equal(HttpStatusCode.OK, bounced.StatusCode);
        var page = await bounced.Content.ReadAsStringAsync();
        Assert.Contains("http-equiv=\"refresh\"", page);
        Assert.Contains("again=1", page);
        Assert.False(bounced.Headers.Contains("Set-Cookie"), "nothing decided before the same-site request");

        // Asked again from the adapter's own page, the session shows and the buyer is asked.
        var asked = await browser.GetStringAsync(theirLink + "&again=1");
        Assert.Contains("You are in the console of <strong>Alpha desk (Acme)</strong>", asked);
        Assert.Contains("Alpha desk", await browser.GetStringAsync("/console"));
    }

    [Fact]
    public async Task A_link_sent_with_again_written_into_it_still_asks_when_the_session_cannot_be_seen()
    {
        var theirs = await NamedAsync(await _bed.AddSubscriptionAsync(), "Beta desk", "Mallory");
        var crafted = (await _bed.ConsoleLinkAsync(theirs.Id)).PathAndQuery + "&again=1";

        var response = await SendWithMarkerOnlyAsync(crafted, crossSite: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var page = await response.Content.ReadAsStringAsync();
        Assert.Contains("You may be in another agent's console.", page);
        Assert.Contains("Beta desk (Mallory)", page);
        Assert.DoesNotContain(response.Headers.TryGetValues("Set-Cookie", out var cookies) ? cookies : [], c => c.StartsWith(ConsoleAccess.CookieName + "=", StringComparison.Ordinal));
    }

    /// <summary>A navigation from another site by a browser in a console: its Lax marker is sent, its Strict session cookie is not.</summary>
    private async Task<HttpResponseMessage> SendWithMarkerOnlyAsync(string pathAndQuery, bool crossSite = false)
    {
        using var client = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        using var request = new HttpRequestMessage(HttpMethod.Get, pathAndQuery);
        request.Headers.Add("Cookie", $"{ConsoleAccess.MarkerCookieName}=1");
        if (crossSite)
        {
            request.Headers.Add("Sec-Fetch-Site", "cross-site");
        }

        return await client.SendAsync(request);
    }

    private async Task<CmpWaldurAdapter.Tenants.Subscription> NamedAsync(CmpWaldurAdapter.Tenants.Subscription subscription, string name, string organization)
    {
        await using var db = await _bed.Services.GetRequiredService<IDbContextFactory<CmpWaldurAdapter.Persistence.AdapterDbContext>>().CreateDbContextAsync();
        await db.Subscriptions.Where(s => s.Id == subscription.Id).ExecuteUpdateAsync(s => s.SetProperty(x => x.Name, name));
        await db.Customers.Where(c => c.Id == subscription.CustomerId).ExecuteUpdateAsync(c => c.SetProperty(x => x.Name, organization));
        subscription.Name = name;
        return subscription;
    }

    [Fact]
    public async Task Replacing_the_link_puts_the_new_one_in_homeport_and_ends_the_old_links_but_not_this_session()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var order = new CmpWaldurAdapter.Orders.OrderRecord { OrderUuid = Guid.NewGuid(), Type = CmpWaldurAdapter.Core.Orders.OrderType.Create, ResourceUuid = subscription.ResourceUuid };
        await _bed.Services.GetRequiredService<CmpWaldurAdapter.Reports.SubscriptionReporter>().SubmitAsync(subscription, order, "Customer support agent", CancellationToken.None);
        var oldLink = ReportedLink(subscription.ResourceUuid);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, oldLink);

        var replaced = await browser.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(await browser.GetStringAsync("/console")));

        Assert.Equal(HttpStatusCode.OK, replaced.StatusCode);
        Assert.Contains("The console link was replaced", await replaced.Content.ReadAsStringAsync());
        Assert.Equal([ConsoleReportContributor.ReplacedHeader, "Your agent is ready", ConsoleReportContributor.Header], Headers(subscription.ResourceUuid));
        var newLink = ReportedLink(subscription.ResourceUuid);
        Assert.NotEqual(oldLink, newLink);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/console")).StatusCode); // the session that replaced it goes on
        using var stale = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        Assert.NotEqual(HttpStatusCode.Redirect, (await stale.GetAsync(oldLink.PathAndQuery)).StatusCode);
        using var fresh = await ConsoleBrowser.OpenAsync(_bed.Url, newLink);
        Assert.Equal(HttpStatusCode.OK, (await fresh.GetAsync("/console")).StatusCode);

        // Replaced again: one notice, the summary kept.
        Assert.Equal(HttpStatusCode.OK, (await fresh.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(await fresh.GetStringAsync("/console")))).StatusCode);
        Assert.Equal([ConsoleReportContributor.ReplacedHeader, "Your agent is ready", ConsoleReportContributor.Header], Headers(subscription.ResourceUuid));

        // A renewal drops the notice (it repairs replacements that were not put in force, where the notice would be false).
        await _bed.Services.GetRequiredService<ConsoleAccess>().RenewLinkAtAsync(subscription.Id, DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal(1, await _bed.Services.GetRequiredService<ConsoleLinkRenewal>().RenewDueAsync(CancellationToken.None));
        Assert.Equal(["Your agent is ready", ConsoleReportContributor.Header], Headers(subscription.ResourceUuid));
    }

    [Fact]
    public async Task A_subscription_that_is_not_active_has_no_link_to_replace()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        var page = await browser.GetStringAsync("/console");
        await using (var db = await _bed.Services.GetRequiredService<IDbContextFactory<CmpWaldurAdapter.Persistence.AdapterDbContext>>().CreateDbContextAsync())
        {
            await db.Subscriptions.Where(s => s.Id == subscription.Id)
                .ExecuteUpdateAsync(u => u.SetProperty(s => s.State, CmpWaldurAdapter.Core.Subscriptions.SubscriptionState.Provisioning));
        }

        var refused = await browser.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(page));

        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Contains("The console link was not replaced: the agent is not active", await refused.Content.ReadAsStringAsync());
        Assert.Equal(1, await VersionAsync(subscription.Id));
        Assert.DoesNotContain(_bed.Waldur.Upstream.Requests, r => r.Path.EndsWith("/submit_report/", StringComparison.Ordinal));
    }

    private List<string> Headers(Guid resource) =>
        [.. _bed.Waldur.Resource(resource)["report"]!.AsArray().Select(s => s!["header"]!.GetValue<string>())];

    [Fact]
    public async Task When_waldur_cannot_take_the_new_link_nothing_is_replaced_and_a_retry_later_succeeds()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var link = await _bed.ConsoleLinkAsync(subscription.Id);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, link);
        var page = await browser.GetStringAsync("/console");
        var version = await VersionAsync(subscription.Id);
        _bed.Waldur.Upstream.Break("POST", "/api/marketplace-provider-resources/.*/submit_report/", 503);

        var refused = await browser.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(page));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("60", refused.Headers.RetryAfter?.ToString());
        Assert.Contains("The console link was not replaced: HomePort could not be reached. The current link still works.", await refused.Content.ReadAsStringAsync());
        Assert.Equal(version, await VersionAsync(subscription.Id));
        Assert.Null(_bed.Waldur.Resource(subscription.ResourceUuid)["report"]);
        Assert.Equal(HttpStatusCode.OK, (await browser.GetAsync("/console")).StatusCode);
        using var again = await ConsoleBrowser.OpenAsync(_bed.Url, link); // HomePort's link still opens the console

        // Waldur might have taken the report after all (a timeout): the next renewal run puts a link in force there.
        _bed.Waldur.Upstream.Heal();
        Assert.Equal(1, await _bed.Services.GetRequiredService<ConsoleLinkRenewal>().RenewDueAsync(CancellationToken.None));
        using (await ConsoleBrowser.OpenAsync(_bed.Url, ReportedLink(subscription.ResourceUuid)))
        {
        }

        Assert.Equal(version, await VersionAsync(subscription.Id));
        Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(page))).StatusCode);
        Assert.Equal(version + 1, await VersionAsync(subscription.Id));
        using var fresh = await ConsoleBrowser.OpenAsync(_bed.Url, ReportedLink(subscription.ResourceUuid));
    }

    /// <summary>The console link in the resource's report as Waldur holds it.</summary>
    private Uri ReportedLink(Guid resource)
    {
        var report = _bed.Waldur.Resource(resource)["report"]!.AsArray();
        var section = report.Single(s => s!["header"]!.GetValue<string>() == ConsoleReportContributor.Header)!;
        return ConsoleBrowser.LinkIn(section["body"]!.GetValue<string>());
    }

    private Task<int> VersionAsync(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.BuyerWebSettings.Where(s => s.SubscriptionId == subscriptionId).Select(s => (int?)s.ConsoleLinkVersion).SingleOrDefaultAsync())
            .ContinueWith(t => t.Result ?? 1, TaskScheduler.Default);

    /// <summary>What any console form can change, for each subscription: web settings, keys and webhooks.</summary>
    private async Task<string> StateAsync(params Guid[] subscriptions)
    {
        var store = _bed.Services.GetRequiredService<BuyerWebStore>();
        var state = new System.Text.StringBuilder();
        foreach (var id in subscriptions)
        {
            var web = await store.GetAsync(id, CancellationToken.None);
            state.Append($"{id}: {web.UpdatedAt:O} {web.ConsoleLinkVersion} {web.MonthlySpendAlertCredits} {web.WidgetDailyMessageCap} {web.AllowedDomains};");
            state.Append(await _bed.QueryAsync(db => db.ApiKeys.CountAsync(k => k.SubscriptionId == id))).Append(';');
            state.Append(await _bed.QueryAsync(db => db.HandoffWebhooks.CountAsync(w => w.SubscriptionId == id))).Append('\n');
        }

        return state.ToString();
    }
}
