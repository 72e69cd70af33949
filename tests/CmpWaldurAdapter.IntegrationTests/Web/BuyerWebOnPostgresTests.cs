using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>The buyer pages' stored state (console link version, allowed domains) on PostgreSQL, through its own migration.</summary>
public sealed class BuyerWebOnPostgresTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(DatabaseProvider.Postgres);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Rotating_the_console_link_and_widget_domains_are_stored_on_postgres()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        var oldLink = (await _bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery;
        await _bed.Services.GetRequiredService<ConsoleReportContributor>().RotateAsync(subscription, CancellationToken.None);
        var newLink = (await _bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery;
        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        Assert.Equal(HttpStatusCode.Forbidden, (await browser.GetAsync(oldLink)).StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(newLink)).StatusCode);

        await _bed.AllowDomainsAsync(subscription.Id, "*.example.com");
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/session") { Content = JsonContent.Create(new { key }) };
        request.Headers.Add("Origin", "https://shop.example.com");
        var session = await browser.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, session.StatusCode);
        Assert.NotNull(JsonNode.Parse(await session.Content.ReadAsStringAsync())!["token"]);
    }

    [Fact]
    public async Task Regenerating_a_publishable_key_in_the_console_ends_its_widget_sessions_at_once()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        var created = await _bed.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Publishable, "widget", CancellationToken.None);
        using var client = _bed.Server.CreateClient();
        var session = await WidgetRequests.SessionAsync(client, created.Plaintext, "203.0.113.7");
        var token = JsonNode.Parse(await session.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, "203.0.113.7", "hi")).StatusCode);

        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        var page = await browser.GetStringAsync("/console?tab=keys");
        Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/console?handler=RegenerateKey", ConsoleBrowser.Form(page, ("id", created.Key.Id.ToString())))).StatusCode);

        Assert.Equal(HttpStatusCode.Forbidden, (await WidgetRequests.ChatAsync(client, token, "203.0.113.7", "hi again")).StatusCode);
        Assert.Single(_bed.Agent.Runs);
    }

    [Fact]
    public async Task Allowed_domains_longer_together_than_their_column_are_a_form_error_not_a_server_error()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        var page = await browser.GetStringAsync("/console?tab=widget");
        // Hosts of 253 characters, the longest there are: 31 of them, one per line, fill 7,873 of the 8,000.
        static string Host(int i) => $"x{i:D2}{new string('a', 60)}.{new string('b', 63)}.{new string('c', 63)}.{new string('d', 57)}.com";
        for (var i = 0; i < 31; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/console?handler=AddDomain", ConsoleBrowser.Form(page, ("domain", Host(i))))).StatusCode);
        }

        var stored = (await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscription.Id, CancellationToken.None)).AllowedDomains;
        var refused = await browser.PostAsync("/console?handler=AddDomain", ConsoleBrowser.Form(page, ("domain", Host(31))));

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("id=\"domain_error\">The allowed domains can take at most 8000 characters together", await refused.Content.ReadAsStringAsync());
        Assert.Equal(stored, (await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscription.Id, CancellationToken.None)).AllowedDomains);
        // A short one still fits.
        Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/console?handler=AddDomain", ConsoleBrowser.Form(page, ("domain", "shop.example.com")))).StatusCode);
        Assert.Equal(32, (await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscription.Id, CancellationToken.None)).AllowedDomainList.Count);
    }
}
