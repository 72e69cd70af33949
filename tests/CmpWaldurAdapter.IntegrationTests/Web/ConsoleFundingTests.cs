using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// The buyer pages tell a Waldur funding outage apart from a paused agent, as the API does; a Waldur customer credit
/// limited to other offerings is, in the console's Run tab, the widget and the console's knowledge-base upload, the 402
/// that says it does not cover the agent (nothing charged, run or uploaded); and the console says when the credit is
/// limited to some agents, and whether it covers this one.
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

    [Fact]
    public async Task A_credit_limited_to_other_agents_is_shown_instead_of_the_balance_and_chat_is_refused()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.00m, offerings: [_bed.Offerings["research-agent"]]);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));

        var usage = await browser.GetStringAsync("/console?tab=usage");
        var run = await browser.GetStringAsync("/console?tab=run");
        await ConsoleBrowser.UseRunTabAsync(browser);
        var chat = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });

        foreach (var page in new[] { usage, run })
        {
            Assert.Contains("id=\"credit-not-covering\"", page);
            Assert.Contains("does not cover this one", page);
            // Not the 100 credits the research agent may spend, as if this agent could.
            Assert.DoesNotContain("id=\"balance\"", page);
            Assert.DoesNotContain("id=\"credits-balance\"", page);
            Assert.DoesNotContain("id=\"credit-limited\"", page);
        }

        Assert.Equal(HttpStatusCode.PaymentRequired, chat.StatusCode);
        Assert.Empty(_bed.Agent.Runs);
    }

    [Fact]
    public async Task A_credit_limited_to_this_agent_among_others_shows_the_balance_with_a_note()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.00m, offerings: [subscription.OfferingUuid, _bed.Offerings["research-agent"]]);

        var (usage, run) = await BalanceShownAsync(subscription, 100);
        foreach (var page in new[] { usage, run })
        {
            Assert.Contains("id=\"credit-limited\"", page);
            Assert.Contains("limited to some agents; this one is among them", page);
            Assert.DoesNotContain("id=\"credit-not-covering\"", page);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_run_tab_answer_gives_the_balance_a_credit_covering_the_agent_leaves(bool limited)
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.00m, offerings: limited ? [subscription.OfferingUuid, _bed.Offerings["research-agent"]] : null);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        await ConsoleBrowser.UseRunTabAsync(browser);

        var response = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var body = JsonNode.Parse(text)!;
        var charged = body["charged"]!.GetValue<long>();
        Assert.True(charged > 0, text);
        Assert.Equal(100 - charged, body["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_run_tab_answer_gives_no_balance_once_the_credit_no_longer_covers_the_agent()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        var credit = _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.00m, offerings: [subscription.OfferingUuid]);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        await ConsoleBrowser.UseRunTabAsync(browser);
        _bed.Agent.RunGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // The message is held while the credit covers the agent; Waldur staff limit it to another agent during the run.
        var sending = browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });
        await _bed.Agent.RunWaiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        _bed.Waldur.SetCustomerCreditOfferings(credit, [_bed.Offerings["research-agent"]]);
        _bed.Services.GetRequiredService<WaldurFunding>().Invalidate(subscription.CustomerId);
        _bed.Agent.RunGate.SetResult();
        using var response = await sending;

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal("Ada: you said hello", body["answer"]!.GetValue<string>());
        // As the page after a reload: the credit does not cover this agent, so no balance it could spend.
        Assert.False(body.ContainsKey("balance"), text);
        Assert.True(body["credits_used"]!.GetValue<long>() > 0, text);
    }

    [Fact]
    public async Task An_unrestricted_credit_shows_the_balance_alone()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 0);
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.00m);

        var (usage, run) = await BalanceShownAsync(subscription, 100);
        foreach (var page in new[] { usage, run })
        {
            Assert.DoesNotContain("id=\"credit-limited\"", page);
            Assert.DoesNotContain("id=\"credit-not-covering\"", page);
        }
    }

    /// <summary>The console's Usage and Run tabs, each asserted to show <paramref name="balance"/> as the balance.</summary>
    private async Task<(string Usage, string Run)> BalanceShownAsync(Subscription subscription, long balance)
    {
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        var usage = await browser.GetStringAsync("/console?tab=usage");
        var run = await browser.GetStringAsync("/console?tab=run");
        Assert.Contains($"<strong id=\"balance\">{balance}</strong>", usage);
        Assert.Contains($"<span id=\"credits-balance\">{balance}</span>", run);
        return (usage, run);
    }
}
