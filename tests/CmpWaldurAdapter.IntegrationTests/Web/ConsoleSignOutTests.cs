using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// The console's Sign out: it ends the session on the server (the cookie is a signed token, so a copy of it kept
/// elsewhere must open nothing afterwards), expires the session cookies under both names, and only a console page of
/// that session can ask for it.
/// </summary>
public sealed class ConsoleSignOutTests : IAsyncLifetime
{
    private readonly BeforeStatement _meanwhile = new();
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        _bed.Settings["Web:TrustForwardedHeaders"] = "true"; // the https browsers come through a TLS-ending ingress
        await _bed.StartAsync(services => services.AddDatabaseInterceptor(DatabaseProvider.Sqlite, _meanwhile));
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Signing_out_ends_the_session_and_a_copy_of_its_cookie_opens_nothing(bool https)
    {
        var subscription = await _bed.AddSubscriptionAsync();
        using var buyer = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id), https);
        using var colleague = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id), https);
        var page = await buyer.Client.GetStringAsync("/console");
        Assert.Contains("id=\"sign-out\"", page);
        var session = buyer.CookieValue(ConsoleAccess.CookieName);
        var antiforgeryCookie = buyer.CookieValue(AntiforgeryCookieBuilder.PlainName);

        var signedOut = await buyer.Client.PostAsync(BuyerWebEndpoints.SignOutPath, ConsoleBrowser.Form(page));

        Assert.Equal(HttpStatusCode.OK, signedOut.StatusCode);
        Assert.Contains("You are signed out", await signedOut.Content.ReadAsStringAsync());
        Assert.Equal("no-store", signedOut.Headers.CacheControl?.ToString());
        var expired = Expired(signedOut);
        Assert.Contains("__Host-" + ConsoleAccess.CookieName, expired);
        Assert.Contains(ConsoleAccess.CookieName, expired);
        Assert.Contains("__Host-" + ConsoleAccess.MarkerCookieName, expired);
        Assert.Contains(ConsoleAccess.MarkerCookieName, expired);
        Assert.DoesNotContain(buyer.CookieNames, n => n.EndsWith(ConsoleAccess.CookieName, StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.Unauthorized, (await buyer.Client.GetAsync("/console")).StatusCode);

        // The cookie (and its anti-forgery pair) copied before: the session is over for them too.
        using var copy = TossedCookieBrowser.Create(_bed.Url, https);
        var prefix = https ? "__Host-" : string.Empty;
        copy.Planted.Add($"{prefix}{ConsoleAccess.CookieName}={session}");
        copy.Planted.Add($"{prefix}{AntiforgeryCookieBuilder.PlainName}={antiforgeryCookie}");
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.Client.GetAsync("/console")).StatusCode);
        var added = await copy.Client.PostAsync("/console?handler=AddDomain", ConsoleBrowser.Form(page, ("domain", "shop.example.org")));
        Assert.Equal(HttpStatusCode.Unauthorized, added.StatusCode);
        using var chat = new HttpRequestMessage(HttpMethod.Post, "/console/api/chat") { Content = JsonContent.Create(new { message = "hello" }) };
        chat.Headers.Add("RequestVerificationToken", ConsoleBrowser.Antiforgery(page));
        Assert.Equal(HttpStatusCode.Unauthorized, (await copy.Client.SendAsync(chat)).StatusCode);
        Assert.Empty(_bed.Agent.Runs);

        // Only that session ended: another browser's, of the same console, goes on.
        Assert.Equal(HttpStatusCode.OK, (await colleague.Client.GetAsync("/console")).StatusCode);
        Assert.Equal(1, await _bed.QueryAsync(db => db.ConsoleSignOuts.CountAsync()));
    }

    [Fact]
    public async Task Signing_out_needs_the_anti_forgery_token_of_a_console_page_of_that_session()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        using var buyer = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id), https: false);
        using var other = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id), https: false);
        await buyer.Client.GetStringAsync("/console"); // the buyer holds an anti-forgery cookie of their own
        var othersPage = await other.Client.GetStringAsync("/console");

        var refused = new[]
        {
            await buyer.Client.PostAsync(BuyerWebEndpoints.SignOutPath, new FormUrlEncodedContent([])),
            await buyer.Client.PostAsync(BuyerWebEndpoints.SignOutPath, ConsoleBrowser.Form(othersPage)),
            await buyer.Client.PostAsync(BuyerWebEndpoints.SignOutPath, JsonContent.Create(new { })),
        };

        Assert.All(refused, r => Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode));
        Assert.All(refused, r => Assert.Empty(Expired(r)));
        Assert.Equal(HttpStatusCode.OK, (await buyer.Client.GetAsync("/console")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await other.Client.GetAsync("/console")).StatusCode);
        Assert.Equal(0, await _bed.QueryAsync(db => db.ConsoleSignOuts.CountAsync()));
    }

    /// <summary>
    /// Sign out sent again: from the same page once its cookie is gone (nothing left to end), or twice at once (a double
    /// click, both with the cookie): neither fails, logs an error nor changes anything more.
    /// </summary>
    [Fact]
    public async Task Signing_out_again_changes_nothing()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        using var buyer = await TossedCookieBrowser.OpenConsoleAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id), https: true);
        var page = await buyer.Client.GetStringAsync("/console");
        using var doubleClick = TossedCookieBrowser.Create(_bed.Url, https: true);
        doubleClick.Planted.Add($"__Host-{ConsoleAccess.CookieName}={buyer.CookieValue(ConsoleAccess.CookieName)}");
        doubleClick.Planted.Add($"__Host-{AntiforgeryCookieBuilder.PlainName}={buyer.CookieValue(AntiforgeryCookieBuilder.PlainName)}");

        // The double click's sign-out is recorded after the first one found none, just before the first records it.
        var doubleClicked = HttpStatusCode.InternalServerError;
        _meanwhile.Stage(new Regex("INSERT INTO \"?console_sign_outs\\b"),
            async () => doubleClicked = (await doubleClick.Client.PostAsync(BuyerWebEndpoints.SignOutPath, ConsoleBrowser.Form(page))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await buyer.Client.PostAsync(BuyerWebEndpoints.SignOutPath, ConsoleBrowser.Form(page))).StatusCode);
        Assert.Equal(1, _meanwhile.Ran);
        Assert.Equal(HttpStatusCode.OK, doubleClicked);
        Assert.DoesNotContain(_bed.Server.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
        var again = await buyer.Client.PostAsync(BuyerWebEndpoints.SignOutPath, ConsoleBrowser.Form(page));

        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);
        Assert.Contains("Nothing was signed out", await again.Content.ReadAsStringAsync());
        Assert.Equal(1, await _bed.QueryAsync(db => db.ConsoleSignOuts.CountAsync()));
        Assert.Equal(HttpStatusCode.Unauthorized, (await doubleClick.Client.GetAsync("/console")).StatusCode);

        // The link opens a new session, which signing out of the old one does not touch.
        Assert.Equal(HttpStatusCode.Redirect, (await buyer.Client.GetAsync((await _bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await buyer.Client.GetAsync("/console")).StatusCode);
    }

    /// <summary>The names of the cookies a response expires (Set-Cookie with an expiry in the past).</summary>
    private static List<string> Expired(HttpResponseMessage response) =>
        [.. (response.Headers.TryGetValues("Set-Cookie", out var values) ? values : [])
            .Where(c => c.Contains("expires=Thu, 01 Jan 1970", StringComparison.OrdinalIgnoreCase))
            .Select(c => c[..c.IndexOf('=', StringComparison.Ordinal)])];
}
