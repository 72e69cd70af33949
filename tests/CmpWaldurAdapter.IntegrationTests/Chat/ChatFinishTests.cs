using System.Net;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// Where an answer ends, as OpenAI ends it: before the first stop sequence (<c>finish_reason</c> "stop") or at
/// <c>max_tokens</c> (four characters a token, "length"), plain and streamed; what was delivered is what usage counts,
/// and the message is charged once, as any answer.
/// </summary>
public sealed class ChatFinishTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Theory]
    [InlineData("\"max_tokens\": 3", "Your parcel ", "length", 3)]
    [InlineData("\"max_completion_tokens\": 2, \"max_tokens\": 100", "Your par", "length", 2)]
    [InlineData("\"max_tokens\": 12", "Your parcel is on its way.", "stop", 7)]
    [InlineData("\"stop\": [\"way\", \" is\"]", "Your parcel", "stop", 3)]
    [InlineData("\"stop\": \"parcel\", \"max_tokens\": 1", "Your", "length", 1)]
    [InlineData("\"stop\": [\"\", \"nowhere\"]", "Your parcel is on its way.", "stop", 7)]
    public async Task A_plain_answer_ends_at_its_first_stop_sequence_or_its_max_tokens(string options, string content, string finish, int completionTokens)
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextAnswers("Your parcel is on its way.");
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json($$"""{"messages": [{"role": "user", "content": "Where is my parcel?"}], {{options}}}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var completion = JsonNode.Parse(body)!;
        Assert.Equal((content, finish), (completion["choices"]![0]!["message"]!["content"]!.GetValue<string>(), completion["choices"]![0]!["finish_reason"]!.GetValue<string>()));
        Assert.Equal(completionTokens, completion["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Theory]
    // A stop sequence across pieces: held back only while it may be one, never sent.
    [InlineData(new[] { "One", ", tw", "o, three" }, "\"stop\": \", two\"", new[] { "One" }, "stop")]
    [InlineData(new[] { "One", ", tw", "o, three" }, "\"stop\": [\", twenty\"]", new[] { "One", ", two, three" }, "stop")]
    [InlineData(new[] { "One,", " two", ", three" }, "\"stop\": [\"x\", \", th\"]", new[] { "One", ", two" }, "stop")]
    [InlineData(new[] { "One", ", two", ", three" }, "\"stop\": [\"three\"]", new[] { "One", ", two", ", " }, "stop")]
    [InlineData(new[] { "One", ", two", ", three" }, "\"stop\": [\"four\"]", new[] { "One", ", two", ", three" }, "stop")]
    [InlineData(new[] { "One", ", two", ", three" }, "\"max_tokens\": 2", new[] { "One", ", two" }, "length")]
    [InlineData(new[] { "One", ", two", ", three" }, "\"max_tokens\": 1", new[] { "One", "," }, "length")]
    [InlineData(new[] { "One", ", two", ", three" }, "\"max_tokens\": 4", new[] { "One", ", two", ", three" }, "stop")]
    public async Task A_streamed_answer_ends_at_its_first_stop_sequence_or_its_max_tokens(string[] pieces, string options, string[] deltas, string finish)
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(pieces);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json($$"""{"stream": true, "stream_options": {"include_usage": true}, "message": "Count", {{options}}}"""));

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        var sent = chunks.Where(c => c["choices"]!.AsArray().Count > 0).Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>()).Where(t => !string.IsNullOrEmpty(t)).ToList();
        Assert.Equal(deltas, sent);
        Assert.Equal(finish, chunks[^2]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.All(chunks[..^2], c => Assert.Null(c["choices"]![0]!["finish_reason"]));
        Assert.Equal((string.Concat(deltas).Length + 3) / 4, chunks[^1]["usage"]!["completion_tokens"]!.GetValue<int>());
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_cut_streamed_answer_is_replayed_for_its_idempotency_key_as_it_was_cut()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        _bed.Tenants.Langflow.ScriptNextStream(["One", ", two", ", three"]);
        using var http = _bed.Http(me.Key);

        async Task<(string Content, string Finish)> StreamAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"stream": true, "message": "Count", "max_tokens": 2}""") };
            request.Headers.Add("Idempotency-Key", "cut-by-length");
            using var response = await http.SendAsync(request);
            var chunks = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(e => e != "[DONE]").Select(e => JsonNode.Parse(e)!["choices"]![0]!).ToList();
            return (string.Concat(chunks.Select(c => c["delta"]!["content"]?.GetValue<string>())), chunks[^1]["finish_reason"]!.GetValue<string>());
        }

        var live = await StreamAsync();
        var replayed = await StreamAsync();

        Assert.Equal(("One, two", "length"), live);
        Assert.Equal(live, replayed);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }
}
