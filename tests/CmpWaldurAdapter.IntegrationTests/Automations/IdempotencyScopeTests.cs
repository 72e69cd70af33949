using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.IntegrationTests.Capabilities;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Persistence;

namespace CmpWaldurAdapter.IntegrationTests.Automations;

/// <summary>
/// Idempotency-Keys of /v1/runs and /v1/chat/completions on PostgreSQL, for an agent that both chats and runs
/// automations: a run key of the longest length allowed is stored (it was stored with a prefix that made it too
/// long for its column: a 500), and one endpoint's key never answers for the other's, whatever it spells.
/// </summary>
public sealed class IdempotencyScopeTests : IAsyncLifetime
{
    private const string Triage = """{"category": "billing", "priority": "high", "reply": "We are on it."}""";
    private const string RunBody = """{"input": {"subject": "Where is my parcel?"}}""";
    private const string ChatBody = """{"message":"Hi"}""";

    private ChatTestBed _bed = null!;
    private string _catalogue = null!;

    public async Task InitializeAsync()
    {
        // The support agent, also selling automation runs (3 credits).
        _catalogue = Path.Combine(Path.GetTempPath(), "cmp-idempotency-catalogue-" + Guid.NewGuid().ToString("N")[..12]);
        MediaTestBed.CopyDirectory(Path.Combine(AppContext.BaseDirectory, "catalogue"), _catalogue);
        var file = Path.Combine(_catalogue, "customer-support-agent.yaml");
        await File.WriteAllTextAsync(file, (await File.ReadAllTextAsync(file))
            .Replace("capabilities: [chat, knowledge_base, widget]", "capabilities: [chat, knowledge_base, widget, automation]", StringComparison.Ordinal)
            .Replace("  rag_document: 5\n", "  rag_document: 5\n  automation_run: 3\n", StringComparison.Ordinal)
            .Replace("components:\n", "components:\n  - type: automation_credits\n    name: Automation runs\n    measured_unit: credits\n", StringComparison.Ordinal)
            .Replace("    rag_credits: \"0.01\"", "    rag_credits: \"0.01\"\n    automation_credits: \"0.01\"", StringComparison.Ordinal));
        _bed = await ChatTestBed.StartAsync((_, settings) => settings["Catalogue:Directory"] = _catalogue, provider: DatabaseProvider.Postgres);
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        Directory.Delete(_catalogue, recursive: true);
    }

    [Theory]
    [InlineData(251)]
    [InlineData(IdempotencyStore.MaxKeyLength)]
    public async Task A_run_key_of_the_longest_allowed_length_is_kept_and_replayed(int length)
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.ScriptNextAnswers(Triage);
        var key = new string('k', length);

        var first = await SendAsync(http, "/v1/runs", RunBody, key);
        var again = await SendAsync(http, "/v1/runs", RunBody, key);

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(HttpStatusCode.BadRequest, (await SendAsync(http, "/v1/runs", RunBody, new string('k', IdempotencyStore.MaxKeyLength + 1))).StatusCode);
    }

    [Fact]
    public async Task A_chat_key_that_spells_runs_and_a_run_key_are_two_requests()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.ScriptNextAnswers(Triage);

        var run = await SendAsync(http, "/v1/runs", RunBody, "ticket-42");
        var chat = await SendAsync(http, "/v1/chat/completions", ChatBody, "runs:ticket-42");
        var chatAgain = await SendAsync(http, "/v1/chat/completions", ChatBody, "runs:ticket-42");
        var runAgain = await SendAsync(http, "/v1/runs", RunBody, "ticket-42");

        Assert.Equal(HttpStatusCode.OK, run.StatusCode);
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        Assert.False(chat.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("chat.completion", JsonNode.Parse(await chat.Content.ReadAsStringAsync())!["object"]!.GetValue<string>());
        Assert.Equal(await chat.Content.ReadAsStringAsync(), await chatAgain.Content.ReadAsStringAsync());
        Assert.Equal(await run.Content.ReadAsStringAsync(), await runAgain.Content.ReadAsStringAsync());
        Assert.Equal(2, _bed.Tenants.Langflow.Runs.Count);
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string path, string body, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = ChatTestBed.Json(body) };
        request.Headers.Add("Idempotency-Key", key);
        var response = await http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }
}
