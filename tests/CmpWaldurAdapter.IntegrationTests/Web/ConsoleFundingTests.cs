using System.Net;
using System.Net.Http.Json;
using CmpWaldurAdapter.Testing.Web;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>The buyer pages' chat tells a Waldur funding outage apart from a paused agent, as the API does.</summary>
public sealed class ConsoleFundingTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        _bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        _bed.Settings["Credits:CreditPrice"] = "0.01";
        _bed.Settings["Credits:FundingTimeout"] = "00:00:02";
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Credits_waldur_cannot_be_asked_for_are_a_503_in_run_not_a_paused_agent()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        _bed.Waldur.Break("GET", "/api/customer-credits/", 503);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        await ConsoleBrowser.UseRunTabAsync(browser);

        var response = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, text);
        Assert.DoesNotContain("paused", text);
        Assert.Empty(_bed.Agent.Runs);
    }
}
