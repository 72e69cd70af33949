using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.IntegrationTests.Chat;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace CmpWaldurAdapter.IntegrationTests.Handoff;

/// <summary>
/// A buyer's webhook is a request the adapter makes from inside the provider's network: it goes only to public
/// https addresses, when saved and again when each delivery connects, and follows no redirect.
/// </summary>
public sealed class WebhookAddressTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;
    private WireMockServer _receiver = null!;

    public async Task InitializeAsync()
    {
        _receiver = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"], StartAdminInterface = false });
        _receiver.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        _bed = await ChatTestBed.StartAsync(settings =>
        {
            settings["Handoff:AllowLoopbackWebhooks"] = "false"; // production's setting
            settings["Handoff:DeliveryInterval"] = "01:00:00";
        });
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _receiver.Stop();
    }

    [Theory]
    [InlineData("http://example.com/hooks", "https")]
    [InlineData("https://127.0.0.1/hooks", "not a public internet address")]
    [InlineData("https://localhost/hooks", "not a public internet address")]
    [InlineData("https://169.254.169.254/latest/meta-data/", "not a public internet address")]
    [InlineData("https://10.0.0.5/hooks", "not a public internet address")]
    [InlineData("https://[::1]/hooks", "not a public internet address")]
    [InlineData("https://2130706433/hooks", "not a public internet address")]
    [InlineData("https://user:secret@example.com/hooks", "user name or password")]
    [InlineData("ftp://example.com/hooks", "full https address")]
    public async Task Webhook_addresses_inside_the_network_or_without_https_are_refused_and_nothing_is_saved(string url, string reason)
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);

        var response = await http.PutAsync("/v1/handoff/webhook", ChatTestBed.Json(new JsonObject { ["url"] = url }.ToJsonString()));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("invalid_url", error["code"]!.GetValue<string>());
        Assert.Contains(reason, error["message"]!.GetValue<string>());
        Assert.Equal(0, await _bed.Tenants.QueryAsync(db => db.HandoffWebhooks.CountAsync()));
    }

    [Fact]
    public async Task A_delivery_to_a_webhook_that_points_inward_is_never_sent()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        // Saved before addresses were checked (or a public name that now resolves inward): the connection is refused.
        await _bed.Services.GetRequiredService<HandoffService>().SetWebhookAsync(me.Subscription.Id, new Uri($"{_receiver.Url}/hooks/inside"), CancellationToken.None);
        using var http = _bed.Http(me.Key);
        using var ask = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"message": "I want to speak to a person"}""") };
        ask.Headers.Add("X-Conversation-Id", "conv-inward");
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(ask)).StatusCode);

        Assert.Equal(0, await _bed.Services.GetRequiredService<HandoffWebhookSender>().DeliverDueAsync(CancellationToken.None));

        Assert.Empty(_receiver.LogEntries);
        var delivery = await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().SingleAsync());
        Assert.Null(delivery.DeliveredAt);
        Assert.Equal("the webhook address points to a non-public address", delivery.LastError);
    }
}
