using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// An <c>Idempotency-Key</c> whose first request is running answers 409 to a duplicate; one whose request died
/// with its process (an unfinished entry older than <c>Chat:RunTimeout</c> plus <see cref="IdempotencyStore.AbandonMargin"/>)
/// is taken over by exactly one retry, which is charged once whatever the dead request had held or charged.
/// </summary>
public sealed class ChatIdempotencyTests : IAsyncLifetime
{
    private const string Body = """{"message":"Hi"}""";

    // The default Chat:RunTimeout (2 minutes) plus the margin: past this an unfinished entry is abandoned.
    private static readonly TimeSpan TakeoverAge = TimeSpan.FromMinutes(2) + IdempotencyStore.AbandonMargin;

    private readonly FailingStatement _statements = new();
    private ChatTestBed _bed = null!;
    private Subscriber _me = null!;

    public async Task InitializeAsync()
    {
        _bed = await ChatTestBed.StartAsync((_, _) => { }, services => services.AddDatabaseInterceptor(DatabaseProvider.Sqlite, _statements));
        _me = await _bed.SubscribeAsync(credits: 10);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<HttpResponseMessage> SendAsync(HttpClient http, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json(Body) };
        request.Headers.Add("Idempotency-Key", key);
        return await http.SendAsync(request);
    }

    private static async Task AssertInUseAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Conflict, $"expected 409, got {response.StatusCode}: {body}");
        Assert.Equal("idempotency_key_in_use", JsonNode.Parse(body)!["error"]!["code"]!.GetValue<string>());
    }

    /// <summary>Holds every agent run inside Langflow until the returned gate opens; <c>Entered</c> is set once one arrived.</summary>
    private (ManualResetEventSlim Entered, ManualResetEventSlim Gate) HoldAgentRuns()
    {
        var entered = new ManualResetEventSlim();
        var gate = new ManualResetEventSlim();
        _bed.Tenants.Langflow.Observe = (message, _) =>
        {
            if (message.Path.StartsWith("/api/v1/run/", StringComparison.Ordinal))
            {
                entered.Set();
                gate.Wait(TimeSpan.FromSeconds(30));
            }
        };
        return (entered, gate);
    }

    [Fact]
    public async Task A_replayed_stream_is_sent_as_a_stream_with_the_same_text_and_charges_nothing()
    {
        _bed.Tenants.Langflow.ScriptNextStream(["One", ", two", ", three"]);
        using var http = _bed.Http(_me.Key);
        const string stream = """{"message":"Count","stream":true,"stream_options":{"include_usage":true}}""";

        async Task<(HttpResponseMessage Response, List<JsonNode> Chunks, string Last)> StreamAsync()
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json(stream) };
            request.Headers.Add("Idempotency-Key", "stream-1");
            var response = await http.SendAsync(request);
            var events = (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
                .Select(e => e.StartsWith("data: ", StringComparison.Ordinal) ? e["data: ".Length..] : throw new Xunit.Sdk.XunitException($"not an SSE data line: {e}")).ToList();
            return (response, events[..^1].Select(e => JsonNode.Parse(e)!).ToList(), events[^1]);
        }

        static string Text(List<JsonNode> chunks) => string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0)
            .Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>()));

        var (first, live, liveLast) = await StreamAsync();
        var (again, replayed, replayedLast) = await StreamAsync();

        Assert.Equal("text/event-stream", first.Content.Headers.ContentType!.MediaType);
        Assert.Equal("text/event-stream", again.Content.Headers.ContentType!.MediaType);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(("[DONE]", "[DONE]"), (liveLast, replayedLast));
        Assert.Equal("One, two, three", Text(live));
        Assert.Equal(Text(live), Text(replayed));
        Assert.Equal(live[0]["id"]!.GetValue<string>(), replayed[0]["id"]!.GetValue<string>());
        Assert.Equal("assistant", replayed[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>());
        Assert.Equal("stop", replayed[^2]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(2, replayed[^1]["usage"]!["credits_charged"]!.GetValue<long>());
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task A_key_used_again_after_its_window_names_a_new_request_that_runs_and_is_charged()
    {
        using var http = _bed.Http(_me.Key);
        using (var first = await SendAsync(http, "daily"))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        // The 24 hours of the key's stored answer pass.
        await _bed.Tenants.QueryAsync(db => db.IdempotentRequests.ExecuteUpdateAsync(set => set.SetProperty(r => r.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1))));
        using var again = await SendAsync(http, "daily");

        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.False(again.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal(2, _bed.Tenants.Langflow.Runs.Count);
        Assert.Equal(new LedgerState(6, 0, 2, 4), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task A_duplicate_sent_while_the_first_request_runs_is_409_and_the_first_is_charged_once()
    {
        using var http = _bed.Http(_me.Key);
        var (entered, gate) = HoldAgentRuns();

        var first = SendAsync(http, "order-7");
        Assert.True(entered.Wait(TimeSpan.FromSeconds(20)), "the first request never reached the agent");
        using var duplicate = await SendAsync(http, "order-7");
        gate.Set();
        using var answered = await first;

        await AssertInUseAsync(duplicate);
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task A_key_left_unfinished_by_a_dead_request_is_refused_until_the_longest_run_has_passed_then_runs_and_is_charged_once()
    {
        using var http = _bed.Http(_me.Key);
        // Begun exactly one run timeout ago: the request may still be settling its answer.
        await _bed.LeaveUnfinishedAsync(_me, "crashed-1", Body, TimeSpan.FromMinutes(2));
        using var tooEarly = await SendAsync(http, "crashed-1");
        await AssertInUseAsync(tooEarly);

        await _bed.LeaveUnfinishedAsync(_me, "crashed-2", Body, TakeoverAge + TimeSpan.FromSeconds(5));
        using var retried = await SendAsync(http, "crashed-2");
        using var replayed = await SendAsync(http, "crashed-2");

        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(HttpStatusCode.OK, replayed.StatusCode);
        Assert.Equal("true", replayed.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await retried.Content.ReadAsStringAsync(), await replayed.Content.ReadAsStringAsync());
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Fact]
    public async Task Two_retries_racing_for_an_abandoned_key_run_it_once()
    {
        using var http = _bed.Http(_me.Key);
        await _bed.LeaveUnfinishedAsync(_me, "crashed", Body, TakeoverAge + TimeSpan.FromSeconds(5));
        var (entered, gate) = HoldAgentRuns();

        var retries = new[] { SendAsync(http, "crashed"), SendAsync(http, "crashed") };
        Assert.True(entered.Wait(TimeSpan.FromSeconds(20)), "no retry reached the agent");
        var refused = await Task.WhenAny(retries);
        gate.Set();
        var answers = await Task.WhenAll(retries);

        await AssertInUseAsync(await refused);
        Assert.Single(answers, a => a.StatusCode == HttpStatusCode.OK);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
        foreach (var answer in answers)
        {
            answer.Dispose();
        }
    }

    [Fact]
    public async Task A_charged_answer_that_could_not_be_stored_is_a_500_that_says_so_and_its_retry_gets_the_answer_without_a_second_charge()
    {
        using var http = _bed.Http(_me.Key);
        _statements.FailNext(ChatTestBed.StoringAnAnswer);

        using var failed = await SendAsync(http, "store-fails");
        using var retried = await SendAsync(http, "store-fails");
        using var replayed = await SendAsync(http, "store-fails");
        await _bed.Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync();

        Assert.True(_statements.Failed);
        var error = await failed.Content.ReadAsStringAsync();
        Assert.True(failed.StatusCode == HttpStatusCode.InternalServerError, error);
        Assert.Equal("internal_error", JsonNode.Parse(error)!["error"]!["code"]!.GetValue<string>());
        Assert.DoesNotContain("nothing was charged", error, StringComparison.OrdinalIgnoreCase);
        // The retry runs the agent again for the answer that was never stored, under the charged ledger id.
        var answer = await retried.Content.ReadAsStringAsync();
        Assert.True(retried.StatusCode == HttpStatusCode.OK, answer);
        Assert.False(retried.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("echo: Hi", JsonNode.Parse(answer)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal("true", replayed.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(answer, await replayed.Content.ReadAsStringAsync());
        Assert.Equal(2, _bed.Tenants.Langflow.Runs.Count);
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_retry_of_a_request_that_died_after_holding_or_charging_is_not_charged_again(bool charged)
    {
        using var http = _bed.Http(_me.Key);
        var requestId = await _bed.LeaveUnfinishedAsync(_me, "crashed", Body, TakeoverAge + TimeSpan.FromSeconds(5));
        // What the dead request did in the ledger, under the request id every attempt with this key uses.
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        var hold = await ledger.ReserveAsync(_me.Customer, _me.Subscription.Id, _me.Subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, requestId);
        Assert.True(hold.IsHeld);
        if (charged)
        {
            Assert.Equal(SettleStatus.Settled, (await ledger.SettleAsync(hold.ReservationId!.Value)).Status);
        }

        using var retried = await SendAsync(http, "crashed");

        var body = await retried.Content.ReadAsStringAsync();
        Assert.True(retried.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal("echo: Hi", JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal(new LedgerState(8, 0, 1, 2), await _bed.LedgerAsync(_me.Customer));
        Assert.Equal(0, await _bed.Tenants.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.CustomerId == _me.Customer && e.Kind == LedgerEntryKind.Release)));
    }
}
