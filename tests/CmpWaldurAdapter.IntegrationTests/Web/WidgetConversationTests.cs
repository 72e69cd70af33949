using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;

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

    [Fact]
    public async Task Regenerating_the_key_ends_its_visitor_tokens_at_once_and_a_token_from_before_they_named_the_value_gets_a_new_session()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();
        var created = await keys.CreateAsync(subscription.Id, ApiKeyKind.Publishable, "widget", CancellationToken.None);
        using var client = _bed.Server.CreateClient();
        var (token, _) = await SessionAsync(client, created.Plaintext, null);
        var conversation = await SessionIdAsync(client, token);

        var regenerated = (await keys.RegenerateAsync(subscription.Id, created.Key.Id, CancellationToken.None))!.Plaintext;

        // The old value's token is refused at once, not when it expires; nothing reaches the agent.
        var runs = _bed.Agent.Runs.Count;
        var refused = await WidgetRequests.ChatAsync(client, token, Here, "still there?");
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("origin_not_allowed", JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(runs, _bed.Agent.Runs.Count);
        Assert.Equal(HttpStatusCode.Unauthorized, (await WidgetRequests.SessionAsync(client, created.Plaintext, Here)).StatusCode);
        // The new value starts sessions; the old value's token does not carry its conversation over.
        var (fresh, resumed) = await SessionAsync(client, regenerated, token);
        Assert.False(resumed);
        Assert.NotEqual(conversation, await SessionIdAsync(client, fresh));

        // A token issued before tokens named the key's value (subscription, key id, origin, visitor) is refused as
        // invalid, the 401 after which the widget starts a new session, which works.
        var old = _bed.Services.GetRequiredService<SignedTokens>().Create("WidgetVisitor", TimeSpan.FromMinutes(15),
            subscription.Id.ToString("N"), created.Key.Id.ToString("N"), WidgetRequests.Origin, Guid.NewGuid().ToString("N"));
        var invalid = await WidgetRequests.ChatAsync(client, old, Here, "from before the deploy");
        Assert.Equal(HttpStatusCode.Unauthorized, invalid.StatusCode);
        Assert.Equal("invalid_visitor_token", JsonNode.Parse(await invalid.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        var (renewed, _) = await SessionAsync(client, regenerated, old);
        await SessionIdAsync(client, renewed);
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
