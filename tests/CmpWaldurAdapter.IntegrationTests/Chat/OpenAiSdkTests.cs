using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Chat;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>The official OpenAI .NET SDK against the running adapter: answers, streams and errors as the SDK's own.</summary>
public sealed class OpenAiSdkTests : IAsyncLifetime
{
    private readonly FailingStatement _statements = new();
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync(
        (_, settings) => settings["Chat:RequestsPerMinute"] = "3",
        services => services.AddDatabaseInterceptor(DatabaseProvider.Sqlite, _statements));

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_plain_completion_answers_from_the_subscriptions_flow_and_charges_the_message_once()
    {
        var me = await _bed.SubscribeAsync(credits: 10);

        ChatCompletion completion = await _bed.OpenAi(me.Key).CompleteChatAsync([new SystemChatMessage("Answer briefly."), new UserChatMessage("Where is my parcel?")]);

        Assert.Equal("echo: Where is my parcel?", completion.Content.Single().Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(ChatTestBed.Model, completion.Model);
        Assert.True(completion.Usage.InputTokenCount > 0 && completion.Usage.OutputTokenCount > 0);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
        var run = Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.False(run.Streamed);
        Assert.Equal("Where is my parcel?", run.Input);
        Assert.Contains("Answer briefly.", run.Tweaks["Prompt-cmp01"]!["instructions"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_history_an_sdk_client_sends_reaches_the_agent_unless_a_named_conversation_keeps_it()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        ChatMessage[] conversation =
        [
            new SystemChatMessage("Answer briefly."),
            new UserChatMessage("My order number is 4711."),
            new AssistantChatMessage("Thanks, I have noted order 4711."),
            new UserChatMessage("Where is it now?"),
        ];

        await _bed.OpenAi(me.Key).CompleteChatAsync(conversation);

        var run = Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal("Where is it now?", run.Input);
        var instructions = run.Tweaks["Prompt-cmp01"]!["instructions"]!.GetValue<string>();
        Assert.Contains("Answer briefly.", instructions);
        Assert.Contains("user: My order number is 4711.\nassistant: Thanks, I have noted order 4711.", instructions);
        Assert.DoesNotContain("Where is it now?", instructions);

        // With `user` (a conversation the agent would remember) the history still goes, in a session of the run's own.
        var withUser = await _bed.OpenAi(me.Key).CompleteChatAsync(conversation, new ChatCompletionOptions { EndUserId = "ada@example.org" });
        var remembered = _bed.Tenants.Langflow.Runs[^1];
        Assert.Contains("user: My order number is 4711.", remembered.Tweaks["Prompt-cmp01"]!["instructions"]!.GetValue<string>());
        Assert.Equal($"{withUser.Value.Id}", remembered.SessionId!.Split(':')[^1]);

        // A named conversation is in the agent's own memory already: the history is not sent twice.
        using var http = _bed.Http(me.Key);
        http.DefaultRequestHeaders.Add("X-Conversation-Id", "support-42");
        var named = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"messages":[{"role":"user","content":"My order number is 4711."},{"role":"assistant","content":"Noted."},{"role":"user","content":"Where is it now?"}]}"""));
        Assert.Equal(HttpStatusCode.OK, named.StatusCode);
        Assert.Equal("support-42", _bed.Tenants.Langflow.Runs[^1].SessionId!.Split(':')[1]);
        Assert.DoesNotContain("4711", _bed.Tenants.Langflow.Runs[^1].Tweaks["Prompt-cmp01"]!["instructions"]?.GetValue<string>() ?? string.Empty, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_streamed_completion_arrives_in_pieces_with_usage_and_is_charged_once()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(["Your ", "parcel ", "is ", "on ", "its ", "way."]);

        var pieces = new List<string>();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in _bed.OpenAi(me.Key).CompleteChatStreamingAsync([new UserChatMessage("Where is my parcel?")]))
        {
            pieces.AddRange(update.ContentUpdate.Select(p => p.Text).Where(t => t.Length > 0));
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal(["Your ", "parcel ", "is ", "on ", "its ", "way."], pieces);
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.True(usage.OutputTokenCount > 0);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
        Assert.True(Assert.Single(_bed.Tenants.Langflow.Runs).Streamed);
    }

    [Fact]
    public async Task A_stream_failing_midway_throws_in_the_sdk_instead_of_ending_as_a_whole_answer_and_charges_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(["Your ", "parcel "], CmpWaldurAdapter.Emulators.LangflowStreamEnding.Error);

        // The .NET SDK skips an error event; only the broken connection tells it the answer is not whole.
        var pieces = new List<string>();
        await Assert.ThrowsAnyAsync<IOException>(async () =>
        {
            await foreach (var update in _bed.OpenAi(me.Key).CompleteChatStreamingAsync([new UserChatMessage("Where is my parcel?")]))
            {
                pieces.AddRange(update.ContentUpdate.Select(p => p.Text).Where(t => t.Length > 0));
            }
        });

        Assert.Equal(["Your ", "parcel "], pieces);
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task The_sdks_own_retry_of_a_charged_answer_that_could_not_be_stored_gets_the_answer_and_is_not_charged_again()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        // Storing the answer for its Idempotency-Key fails once, after the message was charged: the SDK retries the 500 itself, with the same key.
        _statements.FailNext(ChatTestBed.StoringAnAnswer);
        var options = new RequestOptions();
        options.AddHeader("Idempotency-Key", "sdk-retry");

        var result = await _bed.OpenAi(me.Key, retries: 1).CompleteChatAsync(
            BinaryContent.Create(BinaryData.FromString($$"""{"model":"{{ChatTestBed.Model}}","messages":[{"role":"user","content":"Where is my parcel?"}]}""")), options);
        await _bed.Services.GetRequiredService<CmpWaldurAdapter.Chat.AnswerSettlements>().WhenSettledAsync();

        Assert.True(_statements.Failed);
        var completion = JsonNode.Parse(result.GetRawResponse().Content.ToString())!;
        Assert.Equal("echo: Where is my parcel?", completion["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(2, _bed.Tenants.Langflow.Runs.Count);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task Insufficient_credits_surface_as_the_sdks_402_and_run_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 1);

        var error = await Assert.ThrowsAsync<ClientResultException>(() => _bed.OpenAi(me.Key).CompleteChatAsync([new UserChatMessage("Hello")]));

        Assert.Equal(402, error.Status);
        var response = error.GetRawResponse()!;
        Assert.Equal("false", response.Headers.TryGetValue("x-should-retry", out var retry) ? retry : null);
        Assert.Equal("insufficient_credits", JsonNode.Parse(response.Content.ToString())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(new LedgerState(1, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    [Fact]
    public async Task Too_many_requests_surface_as_the_sdks_429_with_retry_after()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        var client = _bed.OpenAi(me.Key);
        var remaining = new List<string?>();
        for (var i = 0; i < 3; i++)
        {
            var answer = await client.CompleteChatAsync([new UserChatMessage($"Hello {i}")]);
            remaining.Add(answer.GetRawResponse().Headers.TryGetValue("x-ratelimit-remaining-requests", out var left) ? left : null);
        }

        var before = await _bed.LedgerAsync(me.Customer);
        var error = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("One more")]));

        // OpenAI's rate-limit headers on every answer (3 a minute here: one back every 20 s), the 429 included.
        Assert.Equal(["2", "1", "0"], remaining);
        Assert.Equal(429, error.Status);
        var headers = error.GetRawResponse()!.Headers;
        Assert.True(headers.TryGetValue("Retry-After", out var retryAfter) && int.Parse(retryAfter!, System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Equal(("3", "0", "60s"), (Header(headers, "x-ratelimit-limit-requests"), Header(headers, "x-ratelimit-remaining-requests"), Header(headers, "x-ratelimit-reset-requests")));
        Assert.Equal(before, await _bed.LedgerAsync(me.Customer));
        Assert.Equal(3, _bed.Tenants.Langflow.Runs.Count);
    }

    [Fact]
    public async Task A_wrong_key_surfaces_as_the_sdks_401_without_echoing_the_key()
    {
        var me = await _bed.SubscribeAsync();
        var wrong = me.Key[..^4] + "AAAA";

        var error = await Assert.ThrowsAsync<ClientResultException>(() => _bed.OpenAi(wrong).CompleteChatAsync([new UserChatMessage("Hello")]));

        Assert.Equal(401, error.Status);
        Assert.DoesNotContain(wrong, error.GetRawResponse()!.Content.ToString());
        Assert.DoesNotContain(wrong, error.Message);
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    [Fact]
    public async Task The_model_list_names_the_keys_agent_and_another_model_is_not_found()
    {
        var me = await _bed.SubscribeAsync();
        using var http = _bed.Http(me.Key);

        var models = JsonNode.Parse(await http.GetStringAsync("/v1/models"))!;
        var error = await Assert.ThrowsAsync<ClientResultException>(() => _bed.OpenAi(me.Key, model: "gpt-4o").CompleteChatAsync([new UserChatMessage("Hello")]));

        Assert.Equal("list", models["object"]!.GetValue<string>());
        Assert.Equal(ChatTestBed.Model, Assert.Single(models["data"]!.AsArray())!["id"]!.GetValue<string>());
        Assert.Equal((int)HttpStatusCode.NotFound, error.Status);
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task The_sdk_retrieves_the_keys_agent_as_a_model_and_another_id_is_not_found()
    {
        var me = await _bed.SubscribeAsync();
        var models = _bed.OpenAiModels(me.Key);

        OpenAI.Models.OpenAIModel model = await models.GetModelAsync(ChatTestBed.Model);
        var error = await Assert.ThrowsAsync<ClientResultException>(() => models.GetModelAsync("gpt-4o"));
        var wrongKey = await Assert.ThrowsAsync<ClientResultException>(() => _bed.OpenAiModels(me.Key[..^4] + "AAAA").GetModelAsync(ChatTestBed.Model));

        Assert.Equal(ChatTestBed.Model, model.Id);
        Assert.Equal("cmp-waldur-adapter", model.OwnedBy);
        Assert.Equal((int)HttpStatusCode.NotFound, error.Status);
        var body = JsonNode.Parse(error.GetRawResponse()!.Content.ToString())!["error"]!;
        Assert.Equal("model_not_found", body["code"]!.GetValue<string>());
        Assert.Equal("model", body["param"]!.GetValue<string>());
        Assert.Equal((int)HttpStatusCode.Unauthorized, wrongKey.Status);
    }

    private static string? Header(System.ClientModel.Primitives.PipelineResponseHeaders headers, string name) => headers.TryGetValue(name, out var value) ? value : null;
}
