using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Web;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// A widget conversation outlives its visitor token: a session started with the previous token carries the same
/// conversation on (the same agent session), while a token that is not ours, of another origin, key or
/// subscription, or too long expired starts a new one.
/// </summary>
public sealed class WidgetConversationTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private const string Here = "203.0.113.7";
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(now: Start);
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_renewed_session_keeps_the_conversation_and_a_token_not_its_own_does_not()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com", "other.example.com");
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        using var client = _bed.Server.CreateClient();

        var (first, resumed) = await SessionAsync(client, key, null);
        Assert.False(resumed);
        var conversation = await SessionIdAsync(client, first);

        // The token expires (the widget renews 30 s before, or after a 401, or on a reload): the same conversation goes on.
        _bed.Clock!.Advance(TimeSpan.FromMinutes(20));
        Assert.Equal(HttpStatusCode.Unauthorized, (await WidgetRequests.ChatAsync(client, first, Here, "still there?")).StatusCode);
        var (second, carriedOn) = await SessionAsync(client, key, first);
        Assert.True(carriedOn);
        Assert.Equal(conversation, await SessionIdAsync(client, second));
        var (third, _) = await SessionAsync(client, key, second);
        Assert.Equal(conversation, await SessionIdAsync(client, third));

        // Not ours, another origin's, another key's, another subscription's: a new conversation each.
        var forged = await SessionAsync(client, key, "CfDJ8" + new string('A', 200));
        var otherOrigin = await SessionAsync(client, key, third, "https://other.example.com");
        var otherKey = await SessionAsync(client, await _bed.PublishableKeyAsync(subscription.Id), third);
        var otherSubscription = await _bed.AddSubscriptionAsync(credits: 100);
        await _bed.AllowDomainsAsync(otherSubscription.Id, "shop.example.com");
        var theirs = await SessionAsync(client, await _bed.PublishableKeyAsync(otherSubscription.Id), null);
        var adopted = await SessionAsync(client, key, theirs.Token);
        foreach (var (token, wasResumed, origin) in new[] { (forged.Token, forged.Resumed, WidgetRequests.Origin), (otherOrigin.Token, otherOrigin.Resumed, "https://other.example.com"), (otherKey.Token, otherKey.Resumed, WidgetRequests.Origin), (adopted.Token, adopted.Resumed, WidgetRequests.Origin) })
        {
            Assert.False(wasResumed);
            Assert.NotEqual(conversation, await SessionIdAsync(client, token, origin));
        }

        // Expired longer than Web:WidgetConversationResumeWindow (2 h): a new conversation.
        _bed.Clock.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromHours(2) + TimeSpan.FromSeconds(1));
        var (late, lateResumed) = await SessionAsync(client, key, third);
        Assert.False(lateResumed);
        Assert.NotEqual(conversation, await SessionIdAsync(client, late));
    }

    private static async Task<(string Token, bool Resumed)> SessionAsync(HttpClient client, string key, string? previous, string origin = WidgetRequests.Origin)
    {
        var response = await WidgetRequests.SessionAsync(client, key, Here, previous, origin);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        return (body["token"]!.GetValue<string>(), body["resumed"]?.GetValue<bool>() ?? false);
    }

    /// <summary>Sends a message with the token; the agent session it ran in.</summary>
    private async Task<string> SessionIdAsync(HttpClient client, string token, string origin = WidgetRequests.Origin)
    {
        var before = _bed.Agent.Runs.Count;
        using var request = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/chat") { Content = System.Net.Http.Json.JsonContent.Create(new { message = "hello" }) };
        request.Headers.Add("Origin", origin);
        request.Headers.Add("X-Forwarded-For", Here);
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        Assert.Equal(HttpStatusCode.OK, (await client.SendAsync(request)).StatusCode);
        Assert.Equal(before + 1, _bed.Agent.Runs.Count);
        return _bed.Agent.Runs.Last().SessionId;
    }
}
