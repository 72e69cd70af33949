using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Chat;

namespace CmpWaldurAdapter.IntegrationTests.Capabilities;

/// <summary>
/// With Waldur funding, an organization whose credits Waldur has never answered for cannot be charged: the chat and
/// the other capabilities say so as a retryable 503, not as "not enough credits, do not retry". A customer credit
/// limited to other offerings is a 402 that says it does not cover the agent.
/// </summary>
public sealed class FundingUnavailableTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;
    private string _catalogue = null!;

    public async Task InitializeAsync() => (_bed, _catalogue) = await MediaTestBed.StartWithMediaAsync(settings =>
    {
        settings["Credits:Funding"] = "WaldurCustomerCredits";
        settings["Credits:CreditPrice"] = "0.01";
        settings["Credits:FundingTimeout"] = "00:00:02";
    });

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        Directory.Delete(_catalogue, recursive: true);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"message":"Hi"}""")]
    [InlineData("/v1/images/generations", """{"prompt":"A lighthouse"}""")]
    public async Task Credits_waldur_cannot_be_asked_for_are_a_retryable_503_and_nothing_runs(string path, string body)
    {
        var me = await _bed.SubscribeAsync(credits: 0);
        _bed.Tenants.Waldur.Break("GET", "/api/customer-credits/", 503);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync(path, ChatTestBed.Json(body));

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, text);
        Assert.Equal("credits_unavailable", JsonNode.Parse(text)!["error"]!["code"]!.GetValue<string>());
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.False(response.Headers.Contains("x-should-retry"));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"message":"Hi"}""")]
    [InlineData("/v1/images/generations", """{"prompt":"A lighthouse"}""")]
    public async Task A_credit_limited_to_other_offerings_is_a_402_that_says_it_does_not_cover_the_agent(string path, string body)
    {
        var me = await _bed.SubscribeAsync(credits: 0);
        _bed.Tenants.Waldur.AddCustomerCredit(me.Customer, 100m, offerings: [Guid.NewGuid()]);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync(path, ChatTestBed.Json(body));

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.PaymentRequired, text);
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.Equal("insufficient_credits", error["code"]!.GetValue<string>());
        Assert.Contains("does not cover this agent", error["message"]!.GetValue<string>());
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }
}
