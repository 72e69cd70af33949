using System.Net;
using System.Net.Http.Json;
using System.Text;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// What a browser is told about the adapter's own pages and its JSON: pages showing a session or a key cannot be
/// framed, leak no Referer, and are never stored; the console's cookies cannot be read by scripts or sent by other
/// sites; nothing is content-sniffed; the one-time link, its key and console links stay out of the logs.
/// </summary>
public sealed class BrowserFacingSecurityTests : IAsyncDisposable
{
    private BuyerWebTestBed? _bed;

    public async ValueTask DisposeAsync()
    {
        if (_bed is not null)
        {
            await _bed.DisposeAsync();
        }
    }

    private Task<BuyerWebTestBed> StartAsync(params (string Key, string Value)[] settings) => StartAsync(null, settings);

    /// <param name="publicBaseUrl">The adapter's public address, when not the one it listens on (an https one: TLS ends at a proxy).</param>
    private async Task<BuyerWebTestBed> StartAsync(Uri? publicBaseUrl, params (string Key, string Value)[] settings)
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        _bed.PublicBaseUrl = publicBaseUrl;
        _bed.Settings["Web:TrustForwardedHeaders"] = "true"; // TLS ends at the ingress, which says so in X-Forwarded-Proto
        foreach (var (key, value) in settings)
        {
            _bed.Settings[key] = value;
        }

        await _bed.StartAsync();
        return _bed;
    }

    private static HttpClient Browser(BuyerWebTestBed bed) =>
        new(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = bed.Url };

    private static async Task<(CreatedKey Key, string Path)> RevealLinkAsync(BuyerWebTestBed bed, Guid subscriptionId)
    {
        var keys = bed.Services.GetRequiredService<ApiKeyService>();
        var created = await keys.CreateAsync(subscriptionId, ApiKeyKind.Secret, "First key", CancellationToken.None);
        return (created, "/keys/reveal/" + await keys.CreateRevealAsync(created, TimeSpan.FromDays(7), CancellationToken.None));
    }

    [Fact]
    public async Task Pages_showing_a_console_session_or_a_key_cannot_be_framed_send_no_referrer_and_are_never_stored()
    {
        var bed = await StartAsync();
        var subscription = await bed.AddSubscriptionAsync();
        var other = await bed.AddSubscriptionAsync();
        var (_, reveal) = await RevealLinkAsync(bed, subscription.Id);
        using var browser = Browser(bed);
        using var stranger = Browser(bed);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync((await bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery)).StatusCode);

        var revealPage = await browser.GetAsync(reveal);
        // A console link followed from another site is asked for again from here: the page holds the link's token.
        using var crossSite = new HttpRequestMessage(HttpMethod.Get, (await bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery);
        crossSite.Headers.Add("Sec-Fetch-Site", "cross-site");
        var pages = new Dictionary<string, HttpResponseMessage>
        {
            ["console"] = await browser.GetAsync("/console?tab=keys"),
            ["console without a session"] = await stranger.GetAsync("/console"),
            ["console link from another site"] = await stranger.SendAsync(crossSite),
            ["switch to another console"] = await browser.GetAsync((await bed.ConsoleLinkAsync(other.Id)).PathAndQuery),
            ["key reveal"] = revealPage,
            ["key reveal, forged button"] = await stranger.PostAsync(reveal, new FormUrlEncodedContent([new("__RequestVerificationToken", "forged")])),
            ["key shown"] = await browser.PostAsync(reveal, new FormUrlEncodedContent([KeyRevealLinks.FormFieldOf(await revealPage.Content.ReadAsStringAsync())])),
            ["key reveal used up"] = await browser.GetAsync(reveal),
        };

        foreach (var (name, page) in pages)
        {
            Assert.True(page.Content.Headers.ContentType?.MediaType == "text/html", $"{name}: {page.StatusCode} {page.Content.Headers.ContentType}");
            var policy = page.Headers.GetValues("Content-Security-Policy").Single();
            Assert.Contains("frame-ancestors 'none'", policy);
            Assert.Contains("script-src 'self'", policy);
            Assert.DoesNotContain("unsafe-inline", policy);
            Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
            Assert.Equal("no-referrer", page.Headers.GetValues("Referrer-Policy").Single());
            Assert.Equal("nosniff", page.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.True(page.Headers.CacheControl?.NoStore == true, $"{name} may be stored: Cache-Control {page.Headers.CacheControl}");
        }

        var tryPage = await stranger.GetAsync("/try/research-agent");
        Assert.Contains("frame-ancestors 'none'", tryPage.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("no-referrer", tryPage.Headers.GetValues("Referrer-Policy").Single());
        Assert.Equal("nosniff", tryPage.Headers.GetValues("X-Content-Type-Options").Single());
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/v1/models")]
    public async Task Answers_over_https_tell_browsers_to_keep_to_https_and_plain_http_ones_do_not(string path)
    {
        var bed = await StartAsync();
        using var browser = Browser(bed);
        using var secure = new HttpRequestMessage(HttpMethod.Get, path);
        secure.Headers.Add("X-Forwarded-Proto", "https");

        var overHttps = await browser.SendAsync(secure);
        var overHttp = await browser.GetAsync(path);

        Assert.Equal("max-age=31536000", overHttps.Headers.GetValues("Strict-Transport-Security").Single());
        Assert.False(overHttp.Headers.Contains("Strict-Transport-Security"));
    }

    /// <summary>
    /// Over HTTPS every cookie is Secure and named <c>__Host-</c>: a browser takes such a cookie only from this host
    /// (Secure, Path=/, no Domain), so a site on a sibling subdomain cannot plant one for the whole domain.
    /// </summary>
    [Fact]
    public async Task Over_https_the_pages_cookies_are_http_only_strict_secure_and_host_prefixed()
    {
        var bed = await StartAsync();

        var cookies = await PageCookiesAsync(bed, request => request.Headers.Add("X-Forwarded-Proto", "https"));

        var session = cookies["__Host-cmp_console"];
        Assert.Contains("httponly", session);
        Assert.Contains("secure", session);
        Assert.Contains("samesite=strict", session);
        Assert.Contains($"max-age={(int)TimeSpan.FromHours(8).TotalSeconds}", session);
        // The marker tells only that a session exists (no secret), for browsers that do not send Sec-Fetch-Site.
        var marker = cookies["__Host-cmp_console_seen"];
        Assert.Contains("httponly", marker);
        Assert.Contains("samesite=lax", marker);
        // The anti-forgery cookie of the console's forms and the key reveal's button.
        var antiforgery = cookies["__Host-cmp_af"];
        Assert.Contains("httponly", antiforgery);
        Assert.Contains("samesite=strict", antiforgery);
        foreach (var (name, cookie) in cookies)
        {
            Assert.StartsWith("__Host-", name);
            Assert.Contains("secure", cookie);
            Assert.Contains("path=/;", cookie + ";");
            Assert.DoesNotContain("domain=", cookie);
        }
    }

    /// <summary>
    /// Behind a proxy that ends TLS without the adapter trusting its X-Forwarded-Proto, requests come over plain HTTP;
    /// the https public address still says the browser talks HTTPS, so cookies are as over HTTPS and HSTS is sent.
    /// </summary>
    [Fact]
    public async Task With_an_https_public_address_cookies_are_secure_and_hsts_is_sent_without_trusted_forwarded_headers()
    {
        var bed = await StartAsync(new Uri("https://adapter.example.org/"), ("Web:TrustForwardedHeaders", "false"));

        var cookies = await PageCookiesAsync(bed, _ => { });
        using var browser = Browser(bed);
        var health = await browser.GetAsync("/healthz");

        Assert.Equal(["__Host-cmp_af", "__Host-cmp_console", "__Host-cmp_console_seen", "__Host-cmp_try"], cookies.Keys.Order(StringComparer.Ordinal));
        Assert.All(cookies.Values, cookie => Assert.Contains("secure", cookie));
        Assert.Equal("max-age=31536000", health.Headers.GetValues("Strict-Transport-Security").Single());
    }

    /// <summary>Plain-HTTP development keeps the unprefixed names: browsers refuse a __Host- cookie without Secure.</summary>
    [Fact]
    public async Task Over_plain_http_the_pages_cookies_keep_their_unprefixed_names_without_secure()
    {
        var bed = await StartAsync();

        var cookies = await PageCookiesAsync(bed, _ => { });

        Assert.Equal(["cmp_af", "cmp_console", "cmp_console_seen", "cmp_try"], cookies.Keys.Order(StringComparer.Ordinal));
        Assert.All(cookies.Values, cookie => Assert.DoesNotContain("secure", cookie));
        Assert.Contains("path=/console", cookies["cmp_console_seen"]);
        Assert.Contains("path=/try", cookies["cmp_try"]);
    }

    [Fact]
    public async Task The_try_visitor_cookie_goes_with_a_link_followed_from_homeport_so_coming_back_does_not_renew_the_demo()
    {
        var bed = await StartAsync();
        using var browser = Browser(bed);
        using var open = new HttpRequestMessage(HttpMethod.Get, "/try/research-agent");
        open.Headers.Add("X-Forwarded-Proto", "https");

        var page = await browser.SendAsync(open);

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var visitor = Cookie(page, "__Host-" + BuyerWebEndpoints.TryVisitorCookie);
        Assert.Contains("httponly", visitor);
        Assert.Contains("secure", visitor);
        Assert.Contains("path=/", visitor);
        // HomePort links here from another site. A browser sends no Strict cookie on such a navigation, so the page
        // would set a new visitor cookie in place of the old one, and every visit from HomePort would give five more
        // demo messages. The cookie is only an id (no authority): Lax is sent on a link, never on another site's POST.
        Assert.Contains("samesite=lax", visitor);
    }

    [Fact]
    public async Task Json_answers_are_never_sniffed_and_refusals_echo_no_markup()
    {
        var bed = await StartAsync();
        var subscription = await bed.AddSubscriptionAsync();
        var key = await bed.PublishableKeyAsync(subscription.Id);
        await bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        using var client = bed.Server.CreateClient();
        using var widget = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/session") { Content = JsonContent.Create(new { key }) };
        widget.Headers.Add("Origin", "https://shop.example.com");
        using var notJson = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/session") { Content = new StringContent($$"""{"key":"{{key}}"}""", Encoding.UTF8, "text/plain") };
        notJson.Headers.Add("Origin", "https://shop.example.com");
        using var borrowed = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/session") { Content = JsonContent.Create(new { key }) };
        borrowed.Headers.Add("Origin", "https://evil.example.net");

        var answers = new Dictionary<string, HttpResponseMessage>
        {
            ["widget session"] = await client.SendAsync(widget),
            ["widget session sent as text"] = await client.SendAsync(notJson),
            ["widget session from another site"] = await client.SendAsync(borrowed),
            ["unknown API path"] = await client.GetAsync("/v1/%3Cscript%3Ealert(1)%3C/script%3E"),
            ["API without a key"] = await client.GetAsync("/v1/keys"),
            ["try message that is not JSON"] = await client.PostAsync("/try/research-agent/messages", new StringContent("<script>alert(1)</script>", Encoding.UTF8, "text/html")),
        };

        Assert.Equal(HttpStatusCode.OK, answers["widget session"].StatusCode);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, answers["widget session sent as text"].StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, answers["widget session from another site"].StatusCode);
        foreach (var (name, answer) in answers)
        {
            Assert.True(answer.Content.Headers.ContentType?.MediaType == "application/json", $"{name}: {answer.Content.Headers.ContentType}");
            Assert.Equal("nosniff", answer.Headers.GetValues("X-Content-Type-Options").Single());
            Assert.DoesNotContain("<script", await answer.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        }

        // The widget script itself is for every site; the adapter's pages are not.
        var script = await client.GetAsync("/widget.js");
        Assert.Equal("*", script.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Equal("nosniff", script.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.False(script.Headers.Contains("X-Frame-Options"));
    }

    [Theory]
    [InlineData("Information")]
    [InlineData("Verbose")]
    public async Task Neither_the_one_time_link_nor_its_key_nor_a_console_link_reaches_the_logs(string level)
    {
        var bed = await StartAsync(("Serilog:MinimumLevel:Default", level), ("Serilog:MinimumLevel:Override:Microsoft", level), ("Serilog:MinimumLevel:Override:System", level));
        var subscription = await bed.AddSubscriptionAsync();
        var (created, reveal) = await RevealLinkAsync(bed, subscription.Id);
        var link = (await bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery;
        var consoleToken = Uri.UnescapeDataString(link[(link.IndexOf("t=", StringComparison.Ordinal) + 2)..]);
        using var browser = Browser(bed);

        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(link)).StatusCode);
        var form = KeyRevealLinks.FormFieldOf(await browser.GetStringAsync(reveal));
        Assert.Contains(created.Plaintext, await (await browser.PostAsync(reveal, new FormUrlEncodedContent([form]))).Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Gone, (await browser.GetAsync(reveal)).StatusCode);

        var lines = bed.Server.Logs.Lines.ToList();
        Assert.Contains(lines, l => l.Contains("/keys/reveal/***", StringComparison.Ordinal)); // the requests were logged, redacted
        foreach (var secret in new[] { reveal["/keys/reveal/".Length..], created.Plaintext, consoleToken, Uri.EscapeDataString(consoleToken) })
        {
            Assert.DoesNotContain(lines, l => l.Contains(secret, StringComparison.Ordinal));
        }
    }

    /// <summary>
    /// The cookies the pages set (a console session, the key reveal's anti-forgery cookie, the try visitor), by name,
    /// their Set-Cookie lines in lower case; <paramref name="prepare"/> readies each request (says it came over HTTPS).
    /// </summary>
    private static async Task<Dictionary<string, string>> PageCookiesAsync(BuyerWebTestBed bed, Action<HttpRequestMessage> prepare)
    {
        var subscription = await bed.AddSubscriptionAsync();
        var cookies = new Dictionary<string, string>(StringComparer.Ordinal);
        using var browser = Browser(bed);
        foreach (var (path, status) in new[]
        {
            ((await bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery, HttpStatusCode.Redirect),
            ((await RevealLinkAsync(bed, subscription.Id)).Path, HttpStatusCode.OK),
            ("/try/research-agent", HttpStatusCode.OK),
        })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            prepare(request);
            var response = await browser.SendAsync(request);
            Assert.Equal(status, response.StatusCode);
            foreach (var line in response.Headers.GetValues("Set-Cookie"))
            {
                cookies[line[..line.IndexOf('=', StringComparison.Ordinal)]] = line.ToLowerInvariant();
            }
        }

        return cookies;
    }

    /// <summary>The Set-Cookie line of <paramref name="name"/>, lower case.</summary>
    private static string Cookie(HttpResponseMessage response, string name) =>
        response.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(name + "=", StringComparison.Ordinal)).ToLowerInvariant();
}
