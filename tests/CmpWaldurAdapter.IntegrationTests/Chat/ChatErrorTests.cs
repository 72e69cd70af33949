using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Testing.Api;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// Every refusal in OpenAI's error shape with the right status and code, never echoing the key, and never
/// charging: the organization's ledger is the same before and after.
/// </summary>
public sealed class ChatErrorTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;
    private Subscriber _me = null!;

    public async Task InitializeAsync()
    {
        _bed = await ChatTestBed.StartAsync(settings =>
        {
            settings["Chat:MaxMessageChars"] = "100";
            settings["Chat:MaxInstructionChars"] = "200";
        });
        _me = await _bed.SubscribeAsync(credits: 10);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<JsonNode> RefusedAsync(HttpResponseMessage response, HttpStatusCode status, string type, string code, string? key = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {status}, got {response.StatusCode}: {body}");
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Equal(type, error["type"]!.GetValue<string>());
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.DoesNotContain(key ?? _me.Key, body);
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(_me.Customer));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        return error;
    }

    // 150 characters: two such instructions pass the bed's 200-character limit together, though each is under it.
    private const string Chars150 = "Answer in formal English and cite the order number in every reply, never invent tracking data, and escalate refunds above fifty euros to a person now.";

    [Theory]
    [InlineData("{\"messages\": [", "invalid_json")]
    [InlineData("[1, 2]", "invalid_json")]
    [InlineData("{}", "empty_message")]
    [InlineData("{\"messages\": []}", "empty_message")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"   \"}]}", "empty_message")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"Hi\"}]}", "empty_message")]
    [InlineData("{\"message\": \"\"}", "empty_message")]
    [InlineData("{\"message\": \"Hello\", \"temperature\": 7}", "invalid_temperature")]
    [InlineData("{\"message\": \"Hello\", \"max_tokens\": 0}", "invalid_max_tokens")]
    [InlineData("{\"message\": \"Hello\", \"max_tokens\": 16385}", "invalid_max_tokens")]
    [InlineData("{\"message\": \"Hello\", \"max_completion_tokens\": 1000000}", "invalid_max_tokens")]
    [InlineData("{\"messages\": [{\"role\": \"system\", \"content\": \"" + Chars150 + "\"}, {\"role\": \"developer\", \"content\": \"" + Chars150 + "\"}, {\"role\": \"user\", \"content\": \"Hi\"}]}", "instructions_too_long")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, null]}", "invalid_message")]
    [InlineData("{\"messages\": [null]}", "invalid_message")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": {\"value\": \"Hi\"}}]}]}", "empty_message")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": 7, \"text\": \"Hi\"}]}]}", "empty_message")]
    [InlineData("{\"message\": \"Hi \\ud83d\"}", "invalid_json")]
    public async Task Bad_bodies_are_400_and_charge_nothing(string body, string code)
    {
        using var http = _bed.Http(_me.Key);

        await RefusedAsync(await http.PostAsync("/v1/chat/completions", ChatTestBed.Json(body)), HttpStatusCode.BadRequest, "invalid_request_error", code);
    }

    // Text cut in the middle of an emoji, as JavaScript and Python write it: valid JSON in valid UTF-8, yet not text.
    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"Where is order 4711?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"track","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"In transit \ud83d"},{"role":"user","content":"When will it arrive?"}]}""", "messages[2].content", null)]
    [InlineData("""{"messages":[{"role":"user","content":"My parcel \ud83d"},{"role":"assistant","content":"Noted."},{"role":"user","content":"Where is it?"}]}""", "messages[0].content", "ticket-9")]
    [InlineData("""{"messages":[{"role":"user","content":"Where is my parcel \ud83d"}]}""", "messages[0].content", null)]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"text","text":"Where is "},{"type":"text","text":"\udce6 my parcel?"}]}]}""", "messages[0].content", null)]
    [InlineData("""{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"assistant","content":"Hello \ud83d"},{"role":"user","content":"Where is my parcel?"}]}""", "messages[0].content", "ticket-9")]
    public async Task A_lone_surrogate_in_any_message_is_400_invalid_json_and_retries_with_its_idempotency_key_charge_nothing(string body, string param, string? conversation)
    {
        using var http = _bed.Http(_me.Key);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json(body) };
            request.Headers.Add("Idempotency-Key", "cut-emoji");
            if (conversation is not null)
            {
                request.Headers.Add("X-Conversation-Id", conversation);
            }

            var error = await RefusedAsync(await http.SendAsync(request), HttpStatusCode.BadRequest, "invalid_request_error", "invalid_json");
            Assert.Equal(param, error["param"]!.GetValue<string>());
        }
    }

    // Options kept as JSON and read as text later: a lone surrogate there was a 500 (after the hold, for some).
    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"tool_choice":"\ud83d"}""", "tool_choice")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"response_format":{"type":"text\ud83d"}}""", "response_format")]
    [InlineData("""{"messages":[{"role":"user","content":"Hi"}],"stop":"\udce6"}""", "stop")]
    [InlineData("""{"stream":true,"messages":[{"role":"user","content":"Hi"}],"stop":["END","\ud83d"]}""", "stop")]
    public async Task A_lone_surrogate_in_an_option_is_400_invalid_json_naming_it_and_charges_nothing(string body, string param)
    {
        using var http = _bed.Http(_me.Key);

        var error = await RefusedAsync(await http.PostAsync("/v1/chat/completions", ChatTestBed.Json(body)), HttpStatusCode.BadRequest, "invalid_request_error", "invalid_json");

        Assert.Equal(param, error["param"]!.GetValue<string>());
    }

    // As OpenAI: a string or an array of up to four strings.
    [Theory]
    [InlineData("\"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]")]
    [InlineData("\"stop\": [\"a\", 7]")]
    [InlineData("\"stop\": [[\"a\"]]")]
    [InlineData("\"stop\": 7")]
    [InlineData("\"stop\": {\"text\": \"a\"}")]
    public async Task Malformed_stop_sequences_are_400_naming_stop_and_charge_nothing(string option)
    {
        using var http = _bed.Http(_me.Key);

        var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json($$"""{"messages": [{"role": "user", "content": "Hi"}], {{option}}}"""));

        var error = await RefusedAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", "invalid_stop");
        Assert.Equal("stop", error["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_emoji_escaped_as_a_surrogate_pair_is_answered_and_charged_once()
    {
        using var http = _bed.Http(_me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"messages":[{"role":"assistant","content":"Hello \uD83D\uDC4B"},{"role":"user","content":"Where is my \ud83d\udce6?"}]}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal("Where is my \U0001F4E6?", _bed.Tenants.Langflow.Runs.Single().Input);
        // "Hello 👋" and "Where is my 📦?": 23 UTF-16 characters, about four a token.
        Assert.Equal(6, JsonNode.Parse(body)!["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task A_body_sent_without_a_content_length_is_read_whole_and_answered()
    {
        using var http = _bed.Http(_me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", new ChunkedJsonContent("""{"messages": [{"role": "user", "content": "Where is my parcel?"}]}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(response.RequestMessage!.Content!.Headers.ContentLength);
        Assert.Contains("echo: Where is my parcel?", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task A_body_without_a_content_length_past_the_limit_is_413_and_charges_nothing()
    {
        using var http = _bed.Http(_me.Key);
        var message = new string('x', 600 * 1024); // past Chat:MaxBodyBytes (512 KB)

        await RefusedAsync(await http.PostAsync("/v1/chat/completions", new ChunkedJsonContent($$"""{"message": "{{message}}"}""")), HttpStatusCode.RequestEntityTooLarge, "invalid_request_error", "request_too_large");
    }

    [Fact]
    public async Task An_oversized_message_is_400_with_the_configured_limit()
    {
        using var http = _bed.Http(_me.Key);

        var error = await RefusedAsync(await http.PostAsync("/v1/chat/completions", ChatTestBed.Json($"{{\"message\": \"{new string('a', 101)}\"}}")), HttpStatusCode.BadRequest, "invalid_request_error", "message_too_long");

        Assert.Contains("100", error["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Content_parts_of_other_shapes_in_the_history_are_skipped_and_the_message_is_charged_once()
    {
        using var http = _bed.Http(_me.Key);
        // The Assistants API's text part ({"value": …}) and a part without a string type, in an earlier turn.
        var body = """{"messages": [{"role": "assistant", "content": [{"type": "text", "text": {"value": "Hi"}}, {"type": null}, 5]}, {"role": "user", "content": [{"type": "text", "text": "Where is my parcel?"}]}]}""";

        var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json(body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("chat.completion", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["object"]!.GetValue<string>());
        Assert.Equal("Where is my parcel?", _bed.Tenants.Langflow.Runs.Single().Input);
        Assert.Equal(1, (await _bed.LedgerAsync(_me.Customer)).Charges);
    }

    [Theory]
    [InlineData("GET", "/v1/chat/completions", HttpStatusCode.MethodNotAllowed, "method_not_allowed")]
    [InlineData("DELETE", "/v1/models/customer-support-agent", HttpStatusCode.MethodNotAllowed, "method_not_allowed")]
    [InlineData("POST", "/v1/embeddings", HttpStatusCode.NotFound, "unknown_url")]
    public async Task Paths_and_methods_the_api_does_not_have_answer_in_openai_shape(string method, string path, HttpStatusCode status, string code)
    {
        using var http = _bed.Http(_me.Key);
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = method == "GET" ? null : ChatTestBed.Json("{}") };

        await RefusedAsync(await http.SendAsync(request), status, "invalid_request_error", code);
    }

    [Theory]
    [InlineData("\"n\": 2", "n", "unsupported_parameter")]
    [InlineData("\"n\": 0", "n", "invalid_n")]
    [InlineData("\"logprobs\": true", "logprobs", "unsupported_parameter")]
    [InlineData("\"top_logprobs\": 3", "top_logprobs", "unsupported_parameter")]
    [InlineData("\"response_format\": {\"type\": \"json_object\"}", "response_format", "unsupported_value")]
    [InlineData("\"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": \"answer\", \"schema\": {\"type\": \"object\"}}}", "response_format", "unsupported_value")]
    [InlineData("\"response_format\": \"json\"", "response_format", "invalid_response_format")]
    [InlineData("\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"lookup\"}}], \"tool_choice\": \"required\"", "tool_choice", "unsupported_value")]
    [InlineData("\"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"lookup\"}}", "tool_choice", "unsupported_value")]
    public async Task Options_the_agent_cannot_honour_are_refused_not_ignored(string option, string param, string code)
    {
        using var http = _bed.Http(_me.Key);

        var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json($$"""{"messages": [{"role": "user", "content": "Hi"}], {{option}}}"""));

        var error = await RefusedAsync(response, HttpStatusCode.BadRequest, "invalid_request_error", code);
        Assert.Equal(param, error["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unknown_fields_and_options_that_ask_for_nothing_are_ignored()
    {
        using var http = _bed.Http(_me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"model":"customer-support-agent","messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"logprobs":false,"top_logprobs":0,"n":1,"seed":4,"tools":[],"tool_choice":"auto","response_format":{"type":"text"},"frequency_penalty":0}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var choice = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["choices"]![0]!.AsObject();
        Assert.Equal("echo: Hi", choice["message"]!["content"]!.GetValue<string>());
        // Written as null, as OpenAI writes them when they were not asked for.
        Assert.True(choice.ContainsKey("logprobs") && choice["logprobs"] is null, choice.ToJsonString());
        Assert.True(choice["message"]!.AsObject().ContainsKey("refusal") && choice["message"]!["refusal"] is null, choice.ToJsonString());
    }

    [Fact]
    public async Task Bad_missing_and_publishable_keys_are_refused()
    {
        using var none = _bed.Http(null);
        await RefusedAsync(await none.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}""")), HttpStatusCode.Unauthorized, "invalid_request_error", "invalid_api_key");
        using var garbage = _bed.Http("sk_live_garbage");
        await RefusedAsync(await garbage.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}""")), HttpStatusCode.Unauthorized, "invalid_request_error", "invalid_api_key", "sk_live_garbage");

        var publishable = await _bed.Services.GetRequiredService<ApiKeyService>().CreateAsync(_me.Subscription.Id, ApiKeyKind.Publishable, "widget", CancellationToken.None);
        using var widget = _bed.Http(publishable.Plaintext);
        await RefusedAsync(await widget.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}""")), HttpStatusCode.Forbidden, "permission_error", "publishable_key_not_allowed", publishable.Plaintext);
    }

    [Fact]
    public async Task A_paused_or_downscaled_resource_is_403_until_waldur_restores_it_and_a_terminated_one_401()
    {
        using var http = _bed.Http(_me.Key);
        var sync = _bed.Services.GetRequiredService<ResourceStateSync>();

        _bed.Tenants.Waldur.SetResourceFlags(_me.Resource, paused: true, downscaled: false);
        await sync.SyncAsync(_me.Resource, CancellationToken.None);
        await RefusedAsync(await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}""")), HttpStatusCode.Forbidden, "permission_error", "subscription_suspended");

        _bed.Tenants.Waldur.SetResourceFlags(_me.Resource, paused: false, downscaled: true);
        await sync.SyncAsync(_me.Resource, CancellationToken.None);
        await RefusedAsync(await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}""")), HttpStatusCode.Forbidden, "permission_error", "subscription_suspended");

        _bed.Tenants.Waldur.SetResourceFlags(_me.Resource, paused: false, downscaled: false);
        await sync.SyncAsync(_me.Resource, CancellationToken.None);
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);

        await _bed.Tenants.QueryAsync(db => db.Subscriptions.Where(s => s.Id == _me.Subscription.Id)
            .ExecuteUpdateAsync(s => s.SetProperty(x => x.State, CmpWaldurAdapter.Core.Subscriptions.SubscriptionState.Terminated)));
        using var afterEnd = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, afterEnd.StatusCode);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Theory]
    [InlineData(500, HttpStatusCode.ServiceUnavailable, "agent_unavailable", "server_error")]
    [InlineData(503, HttpStatusCode.ServiceUnavailable, "agent_unavailable", "server_error")]
    [InlineData(403, HttpStatusCode.BadGateway, "agent_failed", "client_error")]
    public async Task A_failing_langflow_is_502_or_503_with_retry_after_charges_nothing_and_is_counted_as_langflows_error(int upstream, HttpStatusCode status, string code, string outcome)
    {
        _bed.Tenants.Langflow.Break("POST", "/api/v1/run/.*", upstream);
        using var http = _bed.Http(_me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(status, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal(code, JsonNode.Parse(body)!["error"]!["code"]!.GetValue<string>());
        Assert.DoesNotContain("injected failure", body);
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(_me.Customer));
        Assert.Matches($@"\ncmp_upstream_requests_total\{{upstream=""langflow"",outcome=""{outcome}""\}} [1-9]", await http.GetStringAsync("/metrics"));
    }

    [Theory]
    [InlineData(100, "Internal server error", HttpStatusCode.ServiceUnavailable, "server_error")]
    [InlineData(102, "You don't own the dataset.", HttpStatusCode.BadGateway, "client_error")]
    public async Task A_failing_ragflow_is_502_or_503_the_flow_is_not_run_and_it_is_counted_as_ragflows_error(int code, string message, HttpStatusCode status, string outcome)
    {
        _bed.Tenants.Ragflow.Fail("POST", "/api/v1/retrieval", 200, times: 10, body: new JsonObject { ["code"] = code, ["message"] = message }.ToJsonString());
        using var http = _bed.Http(_me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));

        Assert.Equal(status, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.DoesNotContain(message, await response.Content.ReadAsStringAsync());
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(_me.Customer));
        // RAGFlow answers its errors with HTTP 200 and a code in the body: they are errors all the same.
        Assert.Matches($@"\ncmp_upstream_requests_total\{{upstream=""ragflow"",outcome=""{outcome}""\}} [1-9]", await http.GetStringAsync("/metrics"));
    }

    [Theory]
    [InlineData(102, "No chunk found! Check the chunk status please!")]
    [InlineData(100, "No chunk found, please upload file and parse it.")]
    public async Task A_knowledge_base_without_a_search_index_yet_finds_nothing_and_the_agent_answers(int code, string message)
    {
        // RAGFlow has no index for a tenant none of whose documents has finished parsing: an empty search, not an outage.
        _bed.Tenants.Ragflow.Fail("POST", "/api/v1/retrieval", 200, times: 10, body: new JsonObject { ["code"] = code, ["message"] = message }.ToJsonString());
        using var http = _bed.Http(_me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task Without_credits_the_answer_is_402_even_when_the_retrieval_run_meanwhile_fails()
    {
        // Retrieval runs while the credits are held: a refused hold decides the answer, and what the
        // retrieval found or how it failed is dropped.
        var broke = await _bed.SubscribeAsync(credits: 0);
        _bed.Tenants.Ragflow.Fail("POST", "/api/v1/retrieval", 200, times: 10, body: new JsonObject { ["code"] = 100, ["message"] = "Internal server error" }.ToJsonString());
        using var http = _bed.Http(broke.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.PaymentRequired, body);
        Assert.Equal("insufficient_credits", JsonNode.Parse(body)!["error"]!["code"]!.GetValue<string>());
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(0, 0, 0, 0), await _bed.LedgerAsync(broke.Customer));
    }

    [Fact]
    public async Task An_idempotency_key_replays_the_stored_answer_and_charges_once()
    {
        using var http = _bed.Http(_me.Key);
        HttpRequestMessage Request(string body)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json(body) };
            request.Headers.Add("Idempotency-Key", "order-42");
            return request;
        }

        using var first = await http.SendAsync(Request("""{"message":"Hi"}"""));
        using var replay = await http.SendAsync(Request("""{"message":"Hi"}"""));
        using var other = await http.SendAsync(Request("""{"message":"Something else"}"""));

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
        Assert.Equal(await first.Content.ReadAsStringAsync(), await replay.Content.ReadAsStringAsync());
        Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
        // A replay is not another agent run in the marketplace's count.
        Assert.Equal(1, _bed.Services.GetRequiredService<CmpWaldurAdapter.Observability.AdapterMetrics>().AgentRuns.WithLabels(ChatTestBed.Model, "api").Value);
    }

    [Fact]
    public async Task A_failed_request_with_an_idempotency_key_can_be_retried()
    {
        _bed.Tenants.Langflow.Fail("POST", "/api/v1/run/.*", 500, times: 1);
        using var http = _bed.Http(_me.Key);
        HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"message":"Hi"}""") };
            request.Headers.Add("Idempotency-Key", "retry-me");
            return request;
        }

        using var failed = await http.SendAsync(Request());
        using var retried = await http.SendAsync(Request());

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task A_malformed_conversation_header_is_400()
    {
        using var http = _bed.Http(_me.Key);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"message":"Hi"}""") };
        request.Headers.Add("X-Conversation-Id", "no spaces/slashes");

        var error = await RefusedAsync(await http.SendAsync(request), HttpStatusCode.BadRequest, "invalid_request_error", "invalid_request");

        Assert.Equal("X-Conversation-Id", error["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_conversation_id_comes_back_and_scopes_the_langflow_session()
    {
        using var http = _bed.Http(_me.Key);

        using var fresh = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));
        using var byUser = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi","user":"customer-7"}"""));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"message":"Hi","user":"ignored"}""") };
        request.Headers.Add("X-Conversation-Id", "ticket-9");
        using var byHeader = await http.SendAsync(request);

        var generated = fresh.Headers.GetValues("X-Conversation-Id").Single();
        Assert.Equal("customer-7", byUser.Headers.GetValues("X-Conversation-Id").Single());
        Assert.Equal("ticket-9", byHeader.Headers.GetValues("X-Conversation-Id").Single());
        using var byEmail = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi","user":"Ann Lee <ann@example.org>"}"""));
        using var byEmailAgain = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi","user":"Ann Lee <ann@example.org>"}"""));

        var hashed = byEmail.Headers.GetValues("X-Conversation-Id").Single();
        Assert.Matches("^u-[0-9a-f]{32}$", hashed);
        Assert.Equal(hashed, byEmailAgain.Headers.GetValues("X-Conversation-Id").Single());
        var prefix = $"{_me.Resource:N}:";
        Assert.Equal([prefix + generated, prefix + "customer-7", prefix + "ticket-9", prefix + hashed, prefix + hashed], _bed.Tenants.Langflow.Runs.Select(r => r.SessionId));
    }
}
