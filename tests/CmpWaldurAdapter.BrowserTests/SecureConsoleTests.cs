using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace CmpWaldurAdapter.BrowserTests;

/// <summary>
/// The console in Chromium with the adapter behind a proxy that ends TLS (an https public address, no forwarded
/// headers): its cookies are Secure and <c>__Host-</c>, and its forms, Run chat and switch question work on them.
/// Chromium takes Secure cookies from a loopback address as from HTTPS.
/// </summary>
public sealed class SecureConsoleTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;
    private BrowserSession _browser = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        _bed.PublicBaseUrl = new Uri("https://adapter.example.org/");
        await _bed.StartAsync();
        _browser = await BrowserSession.LaunchAsync();
    }

    public async Task DisposeAsync()
    {
        await _browser.DisposeAsync();
        await _bed.DisposeAsync();
    }

    /// <summary>A link the adapter handed out (naming its public address), followed to where it listens.</summary>
    private async Task<string> ConsoleLinkAsync(Guid subscriptionId) => new Uri(_bed.Url, (await _bed.ConsoleLinkAsync(subscriptionId)).PathAndQuery).ToString();

    [Fact]
    public async Task Behind_a_tls_proxy_the_console_works_on_host_prefixed_cookies_and_one_planted_under_the_old_name_changes_nothing()
    {
        var mine = await _bed.AddSubscriptionAsync(credits: 10);
        var theirs = await _bed.AddSubscriptionAsync(credits: 10, configuration: new JsonObject { ["agent_name"] = "Bob" });
        var page = await _browser.NewPageAsync();
        await page.GotoAsync(await ConsoleLinkAsync(mine.Id));
        await Expect(page.Locator("#setting_agent_name")).ToHaveValueAsync("Ada");

        var cookies = await page.Context.CookiesAsync();
        Assert.Equal(["__Host-cmp_af", "__Host-cmp_console", "__Host-cmp_console_seen"], cookies.Select(c => c.Name).Order(StringComparer.Ordinal));
        Assert.All(cookies, c => Assert.True(c.Secure && c.Path == "/", $"{c.Name}: Secure {c.Secure}, Path {c.Path}"));

        // A form (its token made for this session) and the Run chat (the same token as a header).
        await page.Locator("#setting_agent_name").FillAsync("Bea");
        await page.Locator("#save").ClickAsync();
        await Expect(page.Locator("#console-message")).ToContainTextAsync("saved");
        await page.GetByRole(AriaRole.Link, new() { Name = "Run" }).ClickAsync();
        await page.Locator("#message").FillAsync("hello");
        await page.Locator("#send").ClickAsync();
        await Expect(page.Locator("#messages li.bot").Nth(1)).ToHaveTextAsync("Bea: you said hello");

        // Another agent's session, planted under the unprefixed name a sibling subdomain can set for the whole domain.
        var other = await _browser.NewPageAsync();
        await other.GotoAsync(await ConsoleLinkAsync(theirs.Id));
        await Expect(other.Locator("#setting_agent_name")).ToHaveValueAsync("Bob");
        var theirSession = (await other.Context.CookiesAsync()).Single(c => c.Name == "__Host-cmp_console").Value;
        await page.Context.AddCookiesAsync([new Cookie { Name = "cmp_console", Value = theirSession, Domain = _bed.Url.Host, Path = "/" }]);

        await page.GotoAsync(new Uri(_bed.Url, "console").ToString());
        await Expect(page.Locator("#setting_agent_name")).ToHaveValueAsync("Bea");

        // Their link followed from another site asks first; the question's own form switches.
        await using var elsewhere = await HostPage.StartAsync(_bed.Url, "pk_live_unused");
        await page.GotoAsync($"http://localhost:{elsewhere.Port}/");
        await page.EvaluateAsync("href => { const a = document.createElement('a'); a.id = 'console-link'; a.href = href; a.textContent = 'Open'; document.body.append(a); }", await ConsoleLinkAsync(theirs.Id));
        await page.Locator("#console-link").ClickAsync();
        await Expect(page.Locator("#next-agent")).ToBeVisibleAsync();
        await page.Locator("#switch").ClickAsync();
        await Expect(page.Locator("#setting_agent_name")).ToHaveValueAsync("Bob");
        await BrowserSession.ScreenshotAsync(page, "console-behind-tls-proxy");
    }

    /// <summary>
    /// Sign out, clicked: the signed-out page, no console cookie left, and the session's cookie put back (a copy kept
    /// elsewhere) opens nothing: the session ended on the server.
    /// </summary>
    [Fact]
    public async Task Sign_out_ends_the_session_and_its_cookie_put_back_opens_nothing()
    {
        var mine = await _bed.AddSubscriptionAsync(credits: 10);
        var page = await _browser.NewPageAsync();
        await page.GotoAsync(await ConsoleLinkAsync(mine.Id));
        await Expect(page.Locator("#setting_agent_name")).ToHaveValueAsync("Ada");
        var session = (await page.Context.CookiesAsync()).Single(c => c.Name == "__Host-cmp_console");

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();

        await Expect(page.Locator("#signed-out")).ToHaveTextAsync("You are signed out");
        Assert.DoesNotContain(await page.Context.CookiesAsync(), c => c.Name.Contains("cmp_console", StringComparison.Ordinal));
        await BrowserSession.ScreenshotAsync(page, "console-signed-out");

        await page.Context.AddCookiesAsync([new Cookie { Name = session.Name, Value = session.Value, Domain = session.Domain, Path = "/", Secure = true, HttpOnly = true, SameSite = SameSiteAttribute.Strict }]);
        var again = await page.GotoAsync(new Uri(_bed.Url, "console").ToString());
        Assert.Equal(401, again!.Status);
        await Expect(page.Locator("h1")).ToHaveTextAsync("Open the console from HomePort");
    }
}
