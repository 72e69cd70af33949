using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// A named conversation is the agent's memory: the subscription's flow (provisioned from the catalogue's template)
/// reads the session's stored messages back through its Message History component, so a second message is run
/// with the first turn. Other conversations and other subscriptions never see it; a client that keeps the history
/// itself gets a session of its own, so its turns are not given twice.
/// </summary>
public sealed class ConversationMemoryTests : IAsyncLifetime
{
    private const string Visitor = "203.0.113.9";
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync(settings => settings["Web:TrustForwardedHeaders"] = "true");

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task The_second_message_of_a_named_conversation_is_run_with_the_first_turn_and_only_there()
    {
        var a = await _bed.SubscribeAsync(credits: 50);
        var b = await _bed.SubscribeAsync(credits: 50);

        await ChatAsync(a, "parcel-1", "My parcel number is 4711.");
        var second = await ChatAsync(a, "parcel-1", "and where is it now?");
        var otherConversation = await ChatAsync(a, "parcel-2", "and where is it now?");
        var otherSubscription = await ChatAsync(b, "parcel-1", "and where is it now?");

        Assert.Equal("", second.History[0]);
        Assert.Equal("User: My parcel number is 4711.\nAI: echo: My parcel number is 4711.", second.History[1]);
        Assert.Equal("", otherConversation.History.Single());
        Assert.Equal("", otherSubscription.History.Single());
        _bed.Tenants.Langflow.AssertRequestsConformToSpec();
    }

    [Fact]
    public async Task A_streamed_answer_is_remembered_like_a_plain_one()
    {
        var a = await _bed.SubscribeAsync(credits: 50);

        await ChatAsync(a, "streamed", "Where is my parcel?", stream: true);
        var next = await ChatAsync(a, "streamed", "and now?");

        Assert.Equal("User: Where is my parcel?\nAI: echo: Where is my parcel?", next.History[^1]);
    }

    [Fact]
    public async Task A_client_that_sends_its_own_history_gets_a_session_of_its_own_and_no_remembered_turns()
    {
        var a = await _bed.SubscribeAsync(credits: 50);
        using var http = _bed.Http(a.Key);
        const string body = """
            {"user":"alice@example.com","messages":[
              {"role":"user","content":"My parcel number is 4711."},
              {"role":"assistant","content":"It left Tallinn today."},
              {"role":"user","content":"and where is it now?"}]}
            """;

        // The same `user` twice: a session named by it alone would remember the first request's turns in the second.
        for (var i = 0; i < 2; i++)
        {
            using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json(body));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var runs = _bed.Tenants.Langflow.RunHistories;
        Assert.Equal(2, runs.Count);
        Assert.All(runs, run => Assert.Equal("", run.History));
        Assert.NotEqual(runs[0].SessionId, runs[1].SessionId);
        // The client's turns reach the agent once, with its instructions.
        Assert.All(_bed.Tenants.Langflow.Runs, run =>
        {
            Assert.False(run.Tweaks["Prompt-cmp01"]!.AsObject().ContainsKey("history")); // Langflow fills it from the memory edge
            var instructions = run.Tweaks["Prompt-cmp01"]!["instructions"]!.GetValue<string>();
            const string turn = "It left Tallinn today.";
            Assert.Contains(turn, instructions, StringComparison.Ordinal);
            Assert.Equal(instructions.IndexOf(turn, StringComparison.Ordinal), instructions.LastIndexOf(turn, StringComparison.Ordinal));
        });
    }

    [Fact]
    public async Task A_widget_visitor_is_remembered_within_the_conversation_and_another_visitor_is_not()
    {
        var a = await _bed.SubscribeAsync(credits: 50);
        var buyerWeb = _bed.Services.GetRequiredService<CmpWaldurAdapter.Web.BuyerWebStore>();
        await buyerWeb.UpdateAsync(a.Subscription.Id, s => s.AllowedDomains = "shop.example.com", CancellationToken.None);
        var key = (await _bed.Services.GetRequiredService<CmpWaldurAdapter.ApiKeys.ApiKeyService>()
            .CreateAsync(a.Subscription.Id, CmpWaldurAdapter.ApiKeys.ApiKeyKind.Publishable, "widget", CancellationToken.None)).Plaintext;
        using var client = _bed.Server.CreateClient();
        var visitor = await VisitorTokenAsync(client, key);
        var another = await VisitorTokenAsync(client, key);

        await WidgetChatAsync(client, visitor, "My parcel number is 4711.");
        await WidgetChatAsync(client, visitor, "and where is it now?");
        await WidgetChatAsync(client, another, "and where is it now?");

        var runs = _bed.Tenants.Langflow.RunHistories;
        Assert.Equal(["", "User: My parcel number is 4711.\nAI: echo: My parcel number is 4711.", ""], runs.Select(r => r.History));
        Assert.Equal(runs[0].SessionId, runs[1].SessionId);
        Assert.NotEqual(runs[1].SessionId, runs[2].SessionId);
    }

    [Fact]
    public async Task The_consoles_run_tab_remembers_its_conversation_and_a_new_one_starts_empty()
    {
        var a = await _bed.SubscribeAsync(credits: 50);
        var link = await _bed.Services.GetRequiredService<CmpWaldurAdapter.Web.ConsoleAccess>().CreateLinkAsync(a.Subscription.Id, CancellationToken.None);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Server.Url, link);
        await ConsoleBrowser.UseRunTabAsync(browser);

        async Task RunAsync(string conversation, string message)
        {
            using var response = await browser.PostAsJsonAsync("/console/api/chat", new { message, conversation });
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        }

        await RunAsync("run-1", "My parcel number is 4711.");
        await RunAsync("run-1", "and where is it now?");
        await RunAsync("run-2", "and where is it now?");

        var runs = _bed.Tenants.Langflow.RunHistories;
        Assert.Equal(["", "User: My parcel number is 4711.\nAI: echo: My parcel number is 4711.", ""], runs.Select(r => r.History));
        Assert.Equal(runs[0].SessionId, runs[1].SessionId);
        Assert.NotEqual(runs[1].SessionId, runs[2].SessionId);
    }

    /// <summary>Sends a message in the named conversation; the histories of all runs of that session so far.</summary>
    private async Task<(string Answer, IReadOnlyList<string?> History)> ChatAsync(Subscriber who, string conversation, string message, bool stream = false)
    {
        using var http = _bed.Http(who.Key);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = ChatTestBed.Json(new JsonObject { ["message"] = message, ["stream"] = stream }.ToJsonString()),
        };
        request.Headers.Add("X-Conversation-Id", conversation);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await response.Content.ReadAsStringAsync();
        var session = $"{who.Resource:N}:{conversation}";
        IReadOnlyList<LangflowRunHistory> runs = _bed.Tenants.Langflow.RunHistories;
        return (answer, runs.Where(r => r.SessionId == session).Select(r => r.History).ToList());
    }

    private static async Task<string> VisitorTokenAsync(HttpClient client, string key)
    {
        using var response = await WidgetRequests.SessionAsync(client, key, Visitor);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
    }

    private static async Task WidgetChatAsync(HttpClient client, string token, string message)
    {
        using var response = await WidgetRequests.ChatAsync(client, token, Visitor, message);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
