using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// A site on a sibling subdomain (shop.example.org beside adapter.example.org) can set cookies for the whole domain,
/// and the framework keeps the last of two cookies of one name. Such a site must not put the buyer in its own console
/// unasked (a session cookie of its own planted beside the buyer's) nor post the buyer's console forms (a token pair of
/// its own planted as the anti-forgery cookie).
/// </summary>
public sealed class CookieTossingTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;
    private readonly List<TossedCookieBrowser> _buyers = [];

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        _bed.Settings["Web:TrustForwardedHeaders"] = "true"; // TLS ends at the ingress, which says so in X-Forwarded-Proto
        await _bed.StartAsync();
    }

    public async Task DisposeAsync()
    {
        _buyers.ForEach(b => b.Dispose());
        await _bed.DisposeAsync();
    }

    [Fact]
    public async Task Over_https_a_session_cookie_another_site_planted_for_the_domain_does_not_replace_the_buyers()
    {
        var (buyer, theirSession, _) = await BuyerAndTheirSessionAsync(https: true);

        // A browser lets a sibling set only unprefixed names for the domain (a __Host- cookie with a Domain is refused).
        buyer.Planted.Add($"{ConsoleAccess.CookieName}={theirSession}");
        var page = await buyer.Client.GetStringAsync("/console");

        Assert.Contains("Ada", page);
        Assert.DoesNotContain("Mallory", page);
        Assert.Contains("__Host-" + ConsoleAccess.CookieName, buyer.CookieNames);
    }

    /// <summary>
    /// Where the prefix cannot hold (an old browser that takes <c>__HOST-</c> for another name, a name hidden after a
    /// comma in another cookie's value, which the framework splits on, or a plain-HTTP setup) the name seen twice is no
    /// session at all: never the planted one.
    /// </summary>
    [Theory]
    [InlineData(true, "__HOST-cmp_console={0}")]
    [InlineData(true, "theme=dark,__Host-cmp_console={0}")]
    [InlineData(true, "theme=dark __Host-cmp_console={0}")]
    [InlineData(false, "cmp_console={0}")]
    [InlineData(false, "theme=dark,cmp_console={0}")]
    public async Task A_session_cookie_sent_twice_is_no_session_and_never_the_planted_one(bool https, string planted)
    {
        var (buyer, theirSession, _) = await BuyerAndTheirSessionAsync(https);
        Assert.Equal(HttpStatusCode.OK, (await buyer.Client.GetAsync("/console")).StatusCode);

        buyer.Planted.Add(string.Format(System.Globalization.CultureInfo.InvariantCulture, planted, theirSession));
        var console = await buyer.Client.GetAsync("/console");

        Assert.Equal(HttpStatusCode.Unauthorized, console.StatusCode);
        Assert.DoesNotContain("Mallory", await console.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// A link opened while the session cookie is doubled asks first (which session is the browser's own cannot be told)
    /// and its question's form switches: the buyer is not locked out of the console until the planted cookie expires.
    /// The switch also expires the doubled name where a sibling could have planted it (the parent domain of the host
    /// the browser asked for), so the new session is not hidden again.
    /// </summary>
    [Theory]
    [InlineData(false, "cmp_console")]
    [InlineData(true, "__HOST-cmp_console")] // a browser that takes the prefix's case for another name
    public async Task A_link_opened_while_the_session_cookie_is_doubled_asks_and_switches_from_there(bool https, string plantedName)
    {
        var (buyer, theirSession, theirs) = await BuyerAndTheirSessionAsync(https);
        buyer.Planted.Add($"{plantedName}={theirSession}");
        var theirLink = (await _bed.ConsoleLinkAsync(theirs.Id)).PathAndQuery;

        // Their link with the planted session read as the browser's own would sign straight in: the same subscription.
        var asked = await buyer.Client.GetAsync(theirLink + "&again=1");
        var question = await asked.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, asked.StatusCode);
        Assert.Contains("Switch to another agent's console?", question);
        Assert.DoesNotContain(SetCookies(asked), c => c.Contains(ConsoleAccess.CookieName + "=", StringComparison.OrdinalIgnoreCase));
        using var post = new HttpRequestMessage(HttpMethod.Post, "/console/open") { Content = ConsoleBrowser.Form(question, ("t", Token(theirLink))) };
        post.Headers.Host = $"adapter.example.org:{_bed.Url.Port}";
        var switched = await buyer.Client.SendAsync(post);

        Assert.Equal(HttpStatusCode.Redirect, switched.StatusCode);
        Assert.Contains(SetCookies(switched), c => c.StartsWith(plantedName + "=;", StringComparison.Ordinal) && Has(c, "domain=example.org") && Has(c, "path=/"));
        // The session the switch set is not among them.
        var own = (https ? "__Host-" : string.Empty) + ConsoleAccess.CookieName;
        Assert.Single(SetCookies(switched), c => c.StartsWith(own + "=", StringComparison.Ordinal) && !c.StartsWith(own + "=;", StringComparison.Ordinal));
        Assert.DoesNotContain(SetCookies(switched), c => c.StartsWith(own + "=;", StringComparison.Ordinal) && Has(c, "path=/") && !c.Contains("domain=", StringComparison.OrdinalIgnoreCase));

        // The browser dropped the planted cookie as told: the console it switched to opens.
        buyer.Planted.Clear();
        var page = await buyer.Client.GetAsync("/console");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("Mallory", await page.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// The question's form is tied to the doubled session it was shown under, the buyer's own cookie included: a
    /// sessionless token pair another browser got, planted with a doubled session cookie, does not switch the buyer.
    /// </summary>
    [Fact]
    public async Task A_sessionless_anti_forgery_pair_does_not_switch_a_browser_whose_session_cookie_is_doubled()
    {
        var (buyer, theirSession, theirs) = await BuyerAndTheirSessionAsync(https: false);
        var (cookie, token) = await SessionlessPairAsync(theirs);
        buyer.Planted.Add($"{ConsoleAccess.CookieName}={theirSession}");
        buyer.Planted.Add($"{AntiforgeryCookieBuilder.PlainName}={cookie}");

        var switched = await buyer.Client.PostAsync("/console/open",
            new FormUrlEncodedContent([new("__RequestVerificationToken", token), new("t", Token((await _bed.ConsoleLinkAsync(theirs.Id)).PathAndQuery))]));

        Assert.Equal(HttpStatusCode.BadRequest, switched.StatusCode);
        Assert.DoesNotContain(SetCookies(switched), c => c.Contains(ConsoleAccess.CookieName, StringComparison.Ordinal));
    }

    /// <summary>
    /// The anti-forgery cookie and its form token are a pair any browser can get from the adapter's pages. Planted as the
    /// buyer's anti-forgery cookie (over plain HTTP nothing stops that), a pair got in another browser, in a console of
    /// its own or on a page without one, must not pass the buyer's console forms, knowledge upload or Run chat.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_anti_forgery_pair_got_in_another_browser_does_not_pass_the_buyers_console(bool pairFromAConsole)
    {
        var (mine, theirs) = await TwoAgentsAsync();
        var (cookie, token) = pairFromAConsole ? await ConsolePairAsync(theirs) : await SessionlessPairAsync(theirs);
        using var buyer = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id), https: false);
        buyer.Planted.Add($"{AntiforgeryCookieBuilder.PlainName}={cookie}");
        var before = await StateAsync(mine.Id);

        foreach (var (handler, field, value) in new[]
        {
            ("AddDomain", "domain", "shop.example.org"),
            ("Webhook", "url", "https://93.184.215.14/alerts"),
            ("RotateLink", "unused", ""),
            ("CreateKey", "name", "theirs"),
        })
        {
            var posted = await buyer.Client.PostAsync($"/console?handler={handler}",
                new FormUrlEncodedContent([new("__RequestVerificationToken", token), new(field, value)]));
            Assert.True(posted.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized, $"{handler}: {posted.StatusCode}");
        }

        using var upload = new HttpRequestMessage(HttpMethod.Post, "/v1/knowledge/documents") { Content = TextFile() };
        upload.Headers.Add("RequestVerificationToken", token);
        Assert.Equal(HttpStatusCode.Unauthorized, (await buyer.Client.SendAsync(upload)).StatusCode);
        using var chat = new HttpRequestMessage(HttpMethod.Post, "/console/api/chat") { Content = JsonContent.Create(new { message = "hello" }) };
        chat.Headers.Add("RequestVerificationToken", token);
        Assert.Equal(HttpStatusCode.Unauthorized, (await buyer.Client.SendAsync(chat)).StatusCode);

        Assert.Equal(before, await StateAsync(mine.Id));
        Assert.Empty(_bed.Agent.Runs);
        Assert.DoesNotContain(_bed.Waldur.Upstream.Requests, r => r.Path.EndsWith("/submit_report/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_buyers_own_forms_pass_and_so_do_those_of_the_page_that_replaced_the_session()
    {
        var (mine, _) = await TwoAgentsAsync();
        using var buyer = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id), https: true);
        var page = await buyer.Client.GetStringAsync("/console?tab=widget");

        Assert.Equal(HttpStatusCode.OK, (await buyer.Client.PostAsync("/console?handler=AddDomain", ConsoleBrowser.Form(page, ("domain", "shop.example.org")))).StatusCode);
        var replaced = await buyer.Client.PostAsync("/console?handler=RotateLink", ConsoleBrowser.Form(page));
        Assert.Equal(HttpStatusCode.OK, replaced.StatusCode);

        // The page that answered the replacement was made for the new session, which its response set.
        var added = await buyer.Client.PostAsync("/console?handler=AddDomain", ConsoleBrowser.Form(await replaced.Content.ReadAsStringAsync(), ("domain", "blog.example.org")));
        Assert.Equal(HttpStatusCode.OK, added.StatusCode);
        var web = await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(mine.Id, CancellationToken.None);
        Assert.Contains("shop.example.org", web.AllowedDomainList);
        Assert.Contains("blog.example.org", web.AllowedDomainList);
        Assert.Equal(2, web.ConsoleLinkVersion);
    }

    /// <summary>
    /// The one-time key page is opened from HomePort, another site, so without the Strict session cookie, and its button
    /// posts from the adapter's own page, with it: its token is not tied to a console session, or the button would fail
    /// for every buyer who is in a console.
    /// </summary>
    [Fact]
    public async Task The_one_time_key_page_opened_without_the_session_cookie_shows_the_key_when_posted_with_it()
    {
        var (mine, _) = await TwoAgentsAsync();
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();
        var created = await keys.CreateAsync(mine.Id, ApiKeyKind.Secret, "First key", CancellationToken.None);
        var reveal = "/keys/reveal/" + await keys.CreateRevealAsync(created, TimeSpan.FromDays(7), CancellationToken.None);
        using var session = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id), https: false);
        using var buyer = TossedCookieBrowser.Create(_bed.Url, https: false);

        var page = await buyer.Client.GetStringAsync(reveal);
        buyer.Planted.Add($"{ConsoleAccess.CookieName}={session.CookieValue(ConsoleAccess.CookieName)}"); // sent on the same-site POST only
        var shown = await buyer.Client.PostAsync(reveal, new FormUrlEncodedContent([KeyRevealLinks.FormFieldOf(page)]));

        Assert.Equal(HttpStatusCode.OK, shown.StatusCode);
        Assert.Contains(created.Plaintext, await shown.Content.ReadAsStringAsync());
    }

    private async Task<(CmpWaldurAdapter.Tenants.Subscription Mine, CmpWaldurAdapter.Tenants.Subscription Theirs)> TwoAgentsAsync() =>
        (await _bed.AddSubscriptionAsync(), await _bed.AddSubscriptionAsync(configuration: new JsonObject { ["agent_name"] = "Mallory" }));

    /// <summary>The buyer's browser in the console of Ada, and the session cookie another browser got from the link of Mallory's.</summary>
    private async Task<(TossedCookieBrowser Buyer, string TheirSession, CmpWaldurAdapter.Tenants.Subscription Theirs)> BuyerAndTheirSessionAsync(bool https)
    {
        var (mine, theirs) = await TwoAgentsAsync();
        using var other = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(theirs.Id), https);
        var buyer = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(mine.Id), https);
        _buyers.Add(buyer);
        return (buyer, other.CookieValue(ConsoleAccess.CookieName), theirs);
    }

    /// <summary>The anti-forgery cookie and form token another browser got in its own console.</summary>
    private async Task<(string Cookie, string Token)> ConsolePairAsync(CmpWaldurAdapter.Tenants.Subscription subscription)
    {
        using var other = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id), https: false);
        var token = ConsoleBrowser.Antiforgery(await other.Client.GetStringAsync("/console"));
        return (other.CookieValue(AntiforgeryCookieBuilder.PlainName), token);
    }

    /// <summary>The anti-forgery cookie and form token another browser got on a page without a console session (a key's one-time link).</summary>
    private async Task<(string Cookie, string Token)> SessionlessPairAsync(CmpWaldurAdapter.Tenants.Subscription subscription)
    {
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();
        var created = await keys.CreateAsync(subscription.Id, ApiKeyKind.Secret, "First key", CancellationToken.None);
        using var other = TossedCookieBrowser.Create(_bed.Url, https: false);
        var page = await other.Client.GetStringAsync("/keys/reveal/" + await keys.CreateRevealAsync(created, TimeSpan.FromDays(7), CancellationToken.None));
        return (other.CookieValue(AntiforgeryCookieBuilder.PlainName), KeyRevealLinks.FormFieldOf(page).Value);
    }

    /// <summary>What the console's forms, upload and chat can change for a subscription.</summary>
    private async Task<string> StateAsync(Guid subscriptionId)
    {
        var web = await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscriptionId, CancellationToken.None);
        return $"{web.UpdatedAt:O} {web.ConsoleLinkVersion} {web.AllowedDomains}; "
            + await _bed.QueryAsync(db => db.ApiKeys.CountAsync(k => k.SubscriptionId == subscriptionId)) + "; "
            + await _bed.QueryAsync(db => db.HandoffWebhooks.CountAsync(w => w.SubscriptionId == subscriptionId)) + "; "
            + await _bed.QueryAsync(db => db.KnowledgeDocuments.CountAsync(d => d.SubscriptionId == subscriptionId)) + "; "
            + await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscriptionId));
    }

    private static MultipartFormDataContent TextFile()
    {
        var file = new ByteArrayContent("Opening hours: 9 to 5."u8.ToArray());
        file.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        return new MultipartFormDataContent { { file, "file", "hours.txt" } };
    }

    private static string Token(string link) => Uri.UnescapeDataString(link[(link.IndexOf("t=", StringComparison.Ordinal) + 2)..]);

    /// <summary>Whether a Set-Cookie value has <paramref name="attribute"/> (as written, any case).</summary>
    private static bool Has(string setCookie, string attribute) =>
        setCookie.Split(';').Any(a => a.Trim().Equals(attribute, StringComparison.OrdinalIgnoreCase));

    private static IEnumerable<string> SetCookies(HttpResponseMessage response) =>
        response.Headers.TryGetValues("Set-Cookie", out var values) ? values : [];
}
