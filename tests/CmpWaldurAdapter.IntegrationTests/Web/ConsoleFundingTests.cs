using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// The buyer pages tell a Waldur funding outage apart from a paused agent, as the API does; and a Waldur customer
/// credit limited to other offerings is, in the console's Run tab, the widget and the console's knowledge-base upload,
/// the 402 that says it does not cover the agent: nothing charged, nothing run or uploaded.
/// </summary>
public sealed class ConsoleFundingTests : IAsyncLifetime
{
    private const string Visitor = "203.0.113.7";
    private BuyerWebTestBed _bed = null!;
    private readonly RagflowFake _ragflow = new();

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        _bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        _bed.Settings["Credits:CreditPrice"] = "0.01";
        _bed.Settings["Credits:FundingTimeout"] = "00:00:02";
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        _bed.Settings["Ragflow:BaseUrl"] = _ragflow.Url.ToString();
        _bed.Settings["Ragflow:ApiKey"] = RagflowFake.ApiKey;
        _bed.Settings["Knowledge:PollInterval"] = "01:00:00";
        await _bed.StartAsync();
    }

    public async Task DisposeAsync()
    {
        try
        {
            await _bed.DisposeAsync();
            _ragflow.AssertRequestsConformToSpec();
        }
        finally
        {
            _ragflow.Dispose();
        }
    }

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

    [Fact]
    public async Task A_credit_limited_to_other_offerings_is_a_402_in_run_that_says_it_does_not_cover_the_agent()
    {
        var subscription = await CoveredElsewhereAsync();
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        await ConsoleBrowser.UseRunTabAsync(browser);

        var response = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });

        await AssertNotCoveredAsync(response, subscription);
        Assert.Empty(_bed.Agent.Runs);
    }

    [Fact]
    public async Task A_credit_limited_to_other_offerings_is_a_402_in_the_widget_that_says_it_does_not_cover_the_agent()
    {
        var subscription = await CoveredElsewhereAsync();
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        using var client = _bed.Server.CreateClient();
        var session = await WidgetRequests.SessionAsync(client, await _bed.PublishableKeyAsync(subscription.Id), Visitor);
        Assert.Equal(HttpStatusCode.OK, session.StatusCode);
        var token = JsonNode.Parse(await session.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();

        var response = await WidgetRequests.ChatAsync(client, token, Visitor, "hello");

        await AssertNotCoveredAsync(response, subscription);
        Assert.Empty(_bed.Agent.Runs);
    }

    [Fact]
    public async Task A_credit_limited_to_other_offerings_is_a_402_to_a_console_upload_that_says_it_does_not_cover_the_agent()
    {
        var subscription = await CoveredElsewhereAsync();
        var dataset = _ragflow.AddDataset($"cmp-{subscription.ResourceUuid:N}");
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id).ExecuteUpdateAsync(u => u.SetProperty(s => s.RagflowDatasetId, dataset)));
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        await ConsoleBrowser.UseRunTabAsync(browser); // the page's token, which its knowledge panel sends as well
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent("Opening hours: 9 to 5."u8.ToArray());
        file.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
        form.Add(file, "file", "hours.txt");

        var response = await browser.PostAsync("/v1/knowledge/documents", form);

        await AssertNotCoveredAsync(response, subscription);
        Assert.Empty(_ragflow.Documents(dataset));
        Assert.Equal(0, _ragflow.Upstream.Count("POST", "/api/v1/datasets/.*/documents"));
        Assert.Equal(0, await _bed.QueryAsync(db => db.KnowledgeDocuments.CountAsync(d => d.SubscriptionId == subscription.Id)));
    }

    /// <summary>A subscription whose organization's only Waldur credit is limited to another offering.</summary>
    private async Task<Subscription> CoveredElsewhereAsync()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 100m, offerings: [Guid.NewGuid()]);
        return subscription;
    }

    /// <summary>The 402 the buyer sees, telling the credit does not cover the agent, and nothing held or charged.</summary>
    private async Task AssertNotCoveredAsync(HttpResponseMessage response, Subscription subscription)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.PaymentRequired, text);
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal("insufficient_credits", error["code"]!.GetValue<string>());
        Assert.Equal(ApiErrors.CreditNotCoveringAgent, error["message"]!.GetValue<string>());
        Assert.Equal(0, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscription.Id)));
    }
}
