using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// Streams: Langflow's events translated into OpenAI chunks, failures told by an error event on a broken stream, and the
/// charging rule: a completed answer is charged; an agent failure releases the hold; a client that leaves
/// cancels the run and is charged only if part of the answer had reached it.
/// </summary>
public sealed class ChatStreamingTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private static async Task<List<string>> EventsAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => Assert.Single(e.Split('\n')).StartsWith("data: ", StringComparison.Ordinal) ? e["data: ".Length..] : throw new Xunit.Sdk.XunitException($"not an SSE data line: {e}")).ToList();
    }

    [Fact]
    public async Task Deltas_arrive_in_order_with_a_usage_chunk_and_done_last()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(["One", ", two", ", three"]);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"model":"customer-support-agent","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Count"}]}"""));
        var events = await EventsAsync(response);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        Assert.Single(chunks.Select(c => c["id"]!.GetValue<string>()).Distinct());
        Assert.Equal("assistant", chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        var deltas = chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>()).Where(t => !string.IsNullOrEmpty(t)).ToList();
        Assert.Equal(["One", ", two", ", three"], deltas);
        Assert.Equal("stop", chunks[^2]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        // OpenAI writes an open choice's finish_reason and logprobs as null, and typed clients read them so.
        Assert.All(chunks[..^2].Select(c => c["choices"]![0]!.AsObject()), choice =>
        {
            Assert.True(choice.ContainsKey("finish_reason") && choice["finish_reason"] is null, choice.ToJsonString());
            Assert.True(choice.ContainsKey("logprobs") && choice["logprobs"] is null, choice.ToJsonString());
        });
        Assert.Equal(2, chunks[^1]["usage"]!["credits_charged"]!.GetValue<long>());
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Theory]
    [InlineData(LangflowStreamEnding.Error)]
    [InlineData(LangflowStreamEnding.Close)]
    public async Task A_run_failing_mid_stream_ends_with_an_error_event_and_a_broken_connection_without_done_and_charges_nothing(LangflowStreamEnding ending)
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(["Partial", " answer"], ending);
        using var http = _bed.Http(me.Key);
        var before = await LangflowCountsAsync(http);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"message":"Hello"}""") };
        var (status, lines, broken) = await ChatTestBed.ReadStreamAsync(http, request);

        Assert.Equal(HttpStatusCode.OK, status);
        // No [DONE] and no end of the body: clients that ignore the error event (OpenAI's .NET SDK) still see a failure.
        Assert.True(broken, "the connection is aborted after the error event");
        Assert.DoesNotContain("data: [DONE]", lines);
        // Langflow answered 200, yet the run failed: its call counts as Langflow's error, as a 5xx, never as a success.
        var after = await LangflowCountsAsync(http);
        Assert.Equal(["server_error +1"], after.Where(c => c.Value != before.GetValueOrDefault(c.Key)).Select(c => $"{c.Key} +{c.Value - before.GetValueOrDefault(c.Key)}"));
        var error = JsonNode.Parse(lines[^1]["data: ".Length..])!["error"]!;
        Assert.Equal("server_error", error["type"]!.GetValue<string>());
        Assert.Contains("nothing was charged", error["message"]!.GetValue<string>());
        Assert.DoesNotContain("model provider", string.Join("\n", lines)); // Langflow's own text is never passed through
        Assert.Contains(lines, e => e.Contains("Partial", StringComparison.Ordinal));
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_streamed_run_that_ends_is_counted_as_a_success()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(["Whole", " answer"]);
        using var http = _bed.Http(me.Key);
        var before = await LangflowCountsAsync(http);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"stream":true,"message":"Hello"}"""));
        await EventsAsync(response);

        var after = await LangflowCountsAsync(http);
        Assert.Equal(["success +1"], after.Where(c => c.Value != before.GetValueOrDefault(c.Key)).Select(c => $"{c.Key} +{c.Value - before.GetValueOrDefault(c.Key)}"));
    }

    /// <summary>Langflow's calls counted so far, by outcome.</summary>
    private static async Task<Dictionary<string, long>> LangflowCountsAsync(HttpClient http) =>
        System.Text.RegularExpressions.Regex.Matches(await http.GetStringAsync("/metrics"), @"^cmp_upstream_requests_total\{upstream=""langflow"",outcome=""(\w+)""\} (\d+)$", System.Text.RegularExpressions.RegexOptions.Multiline)
            .ToDictionary(m => m.Groups[1].Value, m => long.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task A_run_failing_before_its_first_piece_is_a_plain_503_with_retry_after()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.Fail("POST", "/api/v1/run/.*", 500);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"stream":true,"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Equal("agent_unavailable", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_client_leaving_before_any_piece_cancels_the_run_and_releases_the_hold()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        // Langflow takes long to start answering.
        _bed.Tenants.Langflow.Fail("POST", "/api/v1/run/.*", 200, delay: TimeSpan.FromSeconds(10), body: "{\"event\":\"end\",\"data\":{}}\n\n");
        using var http = _bed.Http(me.Key);
        using var leave = new CancellationTokenSource();

        var post = http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"stream":true,"message":"Hello"}"""), leave.Token);
        // Leave once the message is held and on its way to Langflow, however long that took on a busy machine.
        await Eventually.TrueAsync(async () => (await _bed.LedgerAsync(me.Customer)).Reserved > 0, TimeSpan.FromSeconds(8));
        await Task.Delay(400);
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => post);

        // Released long before Langflow would have answered: the run was cancelled, not waited for.
        await Eventually.TrueAsync(async () => (await _bed.LedgerAsync(me.Customer)).Reserved == 0, TimeSpan.FromSeconds(5));
        Assert.Equal(new LedgerState(10, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
        Assert.Contains(_bed.Server.Logs.Lines, m => m.Contains("left a stream", StringComparison.Ordinal));
    }
}

/// <summary>A client leaving mid-stream, against a Langflow that trickles tokens (the Kestrel fake sees its run cancelled).</summary>
public sealed class ChatDisconnectTests : IAsyncLifetime
{
    private ChatGatewayBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatGatewayBed.StartAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_client_leaving_mid_stream_cancels_the_upstream_run_and_pays_for_what_it_received()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.TokenDelay = TimeSpan.FromMilliseconds(300);
        _bed.Upstream.StreamTokens = 40;
        using var http = _bed.Server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"message":"Hello"}""") };
        request.Headers.Authorization = new("Bearer", key);

        await LeaveAfterTwoDeltasAsync(http, request);

        await Eventually.TrueAsync(() => _bed.Upstream.Aborted == 1, TimeSpan.FromSeconds(5), "the adapter cancels Langflow's run");
        Assert.Equal(0, _bed.Upstream.Completed);
        await Eventually.TrueAsync(async () => (await ReservedAsync(subscription.CustomerId)) == 0, TimeSpan.FromSeconds(5));
        var ledger = _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>();
        Assert.Equal(8, (await ledger.BalanceAsync(subscription.CustomerId)).Balance);

        // Langflow's run was counted once, when its stream ended: cut by the client who left, not a success.
        var langflow = (await http.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{upstream=\"langflow\"", StringComparison.Ordinal)).ToList();
        Assert.Equal(["cmp_upstream_requests_total{upstream=\"langflow\",outcome=\"canceled\"} 1"], langflow);
    }

    [Fact]
    public async Task A_stream_left_midway_is_not_replayed_its_retry_streams_the_whole_answer_for_nothing_more_and_that_is_replayed()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.TokenDelay = TimeSpan.FromMilliseconds(300);
        using var http = _bed.Server.CreateClient();
        HttpRequestMessage Request()
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"stream_options":{"include_usage":true},"message":"Hello"}""") };
            request.Headers.Authorization = new("Bearer", key);
            request.Headers.Add("Idempotency-Key", "cut-1");
            return request;
        }

        using (var request = Request())
        {
            await LeaveAfterTwoDeltasAsync(http, request);
        }

        await Eventually.TrueAsync(() => _bed.Upstream.Aborted == 1, TimeSpan.FromSeconds(5), "the adapter cancels Langflow's run");
        await Eventually.TrueAsync(async () => (await ReservedAsync(subscription.CustomerId)) == 0, TimeSpan.FromSeconds(5));
        _bed.Upstream.TokenDelay = TimeSpan.Zero;

        // The retry: a 409 only while the left request is still putting its entry down.
        async Task<(HttpResponseMessage Response, string Text, string Body)> StreamAsync()
        {
            for (var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5); ; await Task.Delay(100))
            {
                using var request = Request();
                var response = await http.SendAsync(request);
                var body = await response.Content.ReadAsStringAsync();
                if (response.StatusCode == HttpStatusCode.Conflict && DateTime.UtcNow < deadline)
                {
                    response.Dispose();
                    continue;
                }

                Assert.True(response.StatusCode == HttpStatusCode.OK, body);
                var text = string.Concat(body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(e => e != "[DONE]")
                    .Select(e => JsonNode.Parse(e)!["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>()));
                return (response, text, body);
            }
        }

        var (retried, whole, retriedBody) = await StreamAsync();
        var (replayed, again, _) = await StreamAsync();

        Assert.False(retried.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("echo: Hello more more more more more more", whole);
        Assert.EndsWith("data: [DONE]\n\n", retriedBody, StringComparison.Ordinal);
        Assert.Contains("\"credits_charged\":0", retriedBody, StringComparison.Ordinal);
        Assert.Equal(2, _bed.Upstream.Runs);
        Assert.Equal("true", replayed.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(whole, again);
        // The part that reached the client was charged; the retry, under the same ledger request id, costs nothing more.
        var balance = await _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>().BalanceAsync(subscription.CustomerId);
        Assert.Equal((8L, 0L), (balance.Balance, balance.Reserved));
        await using var db = await _bed.Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        Assert.Equal(1, await db.LedgerEntries.CountAsync(e => e.CustomerId == subscription.CustomerId && e.Kind == LedgerEntryKind.Charge));
        retried.Dispose();
        replayed.Dispose();
    }

    [Fact]
    public async Task A_free_retry_that_fails_before_sending_anything_keeps_the_charge_for_the_next_retry()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Server.CreateClient();
        await CutShortAsync(http, subscription.CustomerId, key, "cut-fail", expectedRuns: 1);

        // The free retry: Langflow's stream dies before its first event, so nothing is sent and the retry fails.
        _bed.Upstream.StreamsDie = true;
        var (failed, _) = await SendUntilNotInUseAsync(http, key, "cut-fail");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed);
        _bed.Upstream.StreamsDie = false;

        var (status, body) = await SendUntilNotInUseAsync(http, key, "cut-fail");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("\"credits_charged\":0", body, StringComparison.Ordinal);
        Assert.Equal(3, _bed.Upstream.Runs);
        Assert.Equal((8L, 1), await ChargesAsync(subscription.CustomerId));
    }

    [Fact]
    public async Task One_charge_buys_one_free_run_a_free_retry_left_midway_again_leaves_the_next_retry_charged()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Server.CreateClient();
        await CutShortAsync(http, subscription.CustomerId, key, "cut-loop", expectedRuns: 1);
        await CutShortAsync(http, subscription.CustomerId, key, "cut-loop", expectedRuns: 2);
        Assert.Equal((8L, 1), await ChargesAsync(subscription.CustomerId)); // the free run sent a part and was charged nothing

        var (status, body) = await SendUntilNotInUseAsync(http, key, "cut-loop");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("\"credits_charged\":2", body, StringComparison.Ordinal);
        Assert.Equal(3, _bed.Upstream.Runs);
        Assert.Equal((6L, 2), await ChargesAsync(subscription.CustomerId));
    }

    [Fact]
    public async Task A_client_leaving_a_plain_run_cancels_it_charges_nothing_and_counts_the_call_as_canceled_not_timed_out()
    {
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.RunDelay = TimeSpan.FromSeconds(20);
        using var http = _bed.Server.CreateClient();
        using var leave = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"message":"Hello"}""") };
        request.Headers.Authorization = new("Bearer", key);

        var post = http.SendAsync(request, leave.Token);
        await Eventually.TrueAsync(() => _bed.Upstream.Runs == 1, TimeSpan.FromSeconds(8), "the message reaches Langflow");
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => post);

        await Eventually.TrueAsync(() => _bed.Upstream.Aborted == 1, TimeSpan.FromSeconds(5), "the adapter cancels Langflow's run");
        await Eventually.TrueAsync(async () => (await ReservedAsync(subscription.CustomerId)) == 0, TimeSpan.FromSeconds(5));
        var balance = await _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>().BalanceAsync(subscription.CustomerId);
        Assert.Equal((10L, 0L), (balance.Balance, balance.Reserved));

        // The caller left: the upstream call is counted as canceled, not as a Langflow timeout an operator would chase.
        var langflow = (await http.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{upstream=\"langflow\"", StringComparison.Ordinal)).ToList();
        Assert.Contains("cmp_upstream_requests_total{upstream=\"langflow\",outcome=\"canceled\"} 1", langflow);
        Assert.DoesNotContain(langflow, l => l.Contains("outcome=\"timeout\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_slow_agent_gets_keepalive_comments_that_the_openai_sdk_skips_and_the_answer_is_whole()
    {
        await _bed.DisposeAsync();
        _bed = await ChatGatewayBed.StartAsync(configure: settings => settings["Chat:StreamKeepAliveInterval"] = "00:00:00.200");
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        // Ten keepalive intervals: two of them arrive first even when a busy machine delays the timer.
        _bed.Upstream.FirstTokenDelay = TimeSpan.FromSeconds(2);
        using var http = _bed.Server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"message":"Hello"}""") };
        request.Headers.Authorization = new("Bearer", key);

        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
            var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);

            // Idle proxies see bytes while the agent thinks: comments first, then the answer as ever.
            var firstData = Array.FindIndex(lines, l => l.StartsWith("data: ", StringComparison.Ordinal));
            Assert.True(firstData >= 2, $"at least two keepalives before the first chunk: {string.Join(" | ", lines.Take(5))}");
            Assert.All(lines[..firstData], l => Assert.Equal(": keepalive", l));
            Assert.Equal("data: [DONE]", lines[^1]);
        }

        // The official SDK reads such a stream as if the comments were not there.
        var client = new OpenAI.Chat.ChatClient("customer-support-agent", new System.ClientModel.ApiKeyCredential(key), new OpenAI.OpenAIClientOptions { Endpoint = new Uri(_bed.Server.Url, "v1") });
        var text = new System.Text.StringBuilder();
        await foreach (var update in client.CompleteChatStreamingAsync([new OpenAI.Chat.UserChatMessage("Hello")]))
        {
            text.Append(string.Concat(update.ContentUpdate.Select(p => p.Text)));
        }

        Assert.StartsWith("echo: Hello", text.ToString(), StringComparison.Ordinal);
        Assert.Equal(6, (await _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>().BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task A_slow_agent_that_then_fails_ends_its_kept_alive_stream_with_an_error_event_and_a_broken_connection_and_charges_nothing()
    {
        await _bed.DisposeAsync();
        _bed = await ChatGatewayBed.StartAsync(configure: settings => settings["Chat:StreamKeepAliveInterval"] = "00:00:00.200");
        var (subscription, key) = await _bed.SubscribeAsync(credits: 10);
        _bed.Upstream.FirstTokenDelay = TimeSpan.FromMilliseconds(700);
        _bed.Upstream.StreamsDie = true;
        using var http = _bed.Server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"message":"Hello"}""") };
        request.Headers.Authorization = new("Bearer", key);

        var (status, lines, broken) = await ChatTestBed.ReadStreamAsync(http, request);

        // The 200 went out with the first keepalive, so the failure is told in the stream, which then breaks off.
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(": keepalive", lines[0]);
        Assert.True(broken, "the connection is aborted after the error event");
        var error = JsonNode.Parse(lines[^1]["data: ".Length..])!["error"]!;
        Assert.Equal("agent_unavailable", error["code"]!.GetValue<string>());
        var balance = await _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>().BalanceAsync(subscription.CustomerId);
        Assert.Equal((10L, 0L), (balance.Balance, balance.Reserved));
    }

    private static HttpRequestMessage StreamRequest(string key, string idempotencyKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream":true,"stream_options":{"include_usage":true},"message":"Hello"}""") };
        request.Headers.Authorization = new("Bearer", key);
        request.Headers.Add("Idempotency-Key", idempotencyKey);
        return request;
    }

    /// <summary>Sends the request with its Idempotency-Key, leaves after two deltas, and waits until its entry is marked cut short.</summary>
    private async Task CutShortAsync(HttpClient http, Guid customer, string key, string idempotencyKey, int expectedRuns)
    {
        _bed.Upstream.TokenDelay = TimeSpan.FromMilliseconds(300);
        using (var request = StreamRequest(key, idempotencyKey))
        {
            await LeaveAfterTwoDeltasAsync(http, request);
        }

        await Eventually.TrueAsync(() => _bed.Upstream.Aborted == expectedRuns, TimeSpan.FromSeconds(5), "the adapter cancels Langflow's run");
        await Eventually.TrueAsync(async () => await ReservedAsync(customer) == 0, TimeSpan.FromSeconds(5));
        await Eventually.TrueAsync(async () =>
        {
            await using var db = await _bed.Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
            return await db.IdempotentRequests.AnyAsync(r => r.Key == idempotencyKey && r.StatusCode == CmpWaldurAdapter.Chat.IdempotencyStore.CutShortStatus);
        }, TimeSpan.FromSeconds(5), "the entry is marked cut short");
        _bed.Upstream.TokenDelay = TimeSpan.Zero;
    }

    /// <summary>The whole answer to the request, after any 409 of an attempt still putting its entry down.</summary>
    private static async Task<(HttpStatusCode Status, string Body)> SendUntilNotInUseAsync(HttpClient http, string key, string idempotencyKey)
    {
        for (var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5); ; await Task.Delay(100))
        {
            using var request = StreamRequest(key, idempotencyKey);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.Conflict || DateTime.UtcNow >= deadline)
            {
                return (response.StatusCode, body);
            }
        }
    }

    private async Task<(long Balance, int Charges)> ChargesAsync(Guid customer)
    {
        var balance = await _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>().BalanceAsync(customer);
        await using var db = await _bed.Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return (balance.Balance, await db.LedgerEntries.CountAsync(e => e.CustomerId == customer && e.Kind == LedgerEntryKind.Charge));
    }

    /// <summary>Reads the stream until two of the answer's deltas arrived, then leaves (closes the response).</summary>
    private static async Task LeaveAfterTwoDeltasAsync(HttpClient http, HttpRequestMessage request)
    {
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var deltas = 0;
        while (deltas < 2 && await reader.ReadLineAsync() is { } line)
        {
            deltas += line.Contains("\"content\":\"echo", StringComparison.Ordinal) || line.Contains("\"content\":\" Hello", StringComparison.Ordinal) ? 1 : 0;
        }

        Assert.Equal(2, deltas);
    }

    private async Task<long> ReservedAsync(Guid customer) =>
        (await _bed.Server.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>().BalanceAsync(customer)).Reserved;
}
