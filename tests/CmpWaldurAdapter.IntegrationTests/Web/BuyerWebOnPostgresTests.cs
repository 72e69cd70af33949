using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
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
}
