using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Observability;

namespace CmpWaldurAdapter.UnitTests.Observability;

/// <summary>
/// The outcome each upstream call is counted under, through the handlers every upstream client gets (the caller's token
/// and run outermost, the metrics handler per attempt): a streamed body ends its call when it ends, work the adapter
/// drops is discarded, and a finished run's deadline no longer decides for the calls after it. Each call is counted and
/// timed once.
/// </summary>
public sealed class UpstreamOutcomeTests
{
    private readonly AdapterMetrics _metrics = new();

    [Fact]
    public async Task A_stream_cut_by_the_run_deadline_after_its_headers_is_one_timeout_not_a_success()
    {
        var body = new Pipe();
        using var langflow = Chain(streamed: true, _ => Task.FromResult(Ok(body)));
        using var run = RunDeadline.Start(TimeSpan.FromMilliseconds(100), CancellationToken.None);

        using (var response = await langflow.SendAsync(Run(), HttpCompletionOption.ResponseHeadersRead, run.Token))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Empty(Counted()); // the headers are no outcome yet
            await using var stream = await response.Content.ReadAsStreamAsync(CancellationToken.None);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => stream.ReadAsync(new byte[64], run.Token).AsTask());
        }

        Assert.Equal(["timeout 1"], Counted());
        Assert.Equal(1, _metrics.UpstreamDuration.WithLabels("langflow").Count);
    }

    [Fact]
    public async Task A_stream_whose_client_left_is_one_canceled()
    {
        var body = new Pipe();
        using var client = new CancellationTokenSource();
        using var langflow = Chain(streamed: true, _ => Task.FromResult(Ok(body)));
        using var run = RunDeadline.Start(TimeSpan.FromMinutes(5), client.Token);

        using (var response = await langflow.SendAsync(Run(), HttpCompletionOption.ResponseHeadersRead, run.Token))
        {
            await using var stream = await response.Content.ReadAsStreamAsync(run.Token);
            var reading = stream.ReadAsync(new byte[64], run.Token).AsTask();
            await client.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reading);
        }

        Assert.Equal(["canceled 1"], Counted());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_stream_read_to_its_end_or_let_go_by_its_reader_is_one_success(bool toTheEnd)
    {
        var body = new Pipe();
        using var langflow = Chain(streamed: true, _ => Task.FromResult(Ok(body)));
        using var run = RunDeadline.Start(TimeSpan.FromMinutes(5), CancellationToken.None);

        using (var response = await langflow.SendAsync(Run(), HttpCompletionOption.ResponseHeadersRead, run.Token))
        {
            await body.Writer.WriteAsync("{\"event\":\"end\"}\n\n"u8.ToArray());
            if (toTheEnd)
            {
                await body.Writer.CompleteAsync();
                Assert.Equal("{\"event\":\"end\"}\n\n", await response.Content.ReadAsStringAsync());
                Assert.Equal(["success 1"], Counted()); // buffered whole, then let go
            }
            else
            {
                await using var stream = await response.Content.ReadAsStreamAsync(run.Token);
                Assert.True(await stream.ReadAsync(new byte[64], run.Token) > 0); // the "end" event: the reader needs no more
            }
        }

        Assert.Equal(["success 1"], Counted());
        Assert.Equal(1, _metrics.UpstreamDuration.WithLabels("langflow").Count);
    }

    [Theory]
    [InlineData("{\"event\":\"error\",\"data\":{\"error\":\"Error running graph\"}}\n\n", "server_error 1")]
    [InlineData("", "server_error 1")]
    [InlineData("{\"event\":\"end\",\"data\":{}}\n\n", "success 1")]
    [InlineData("{\"event\":\"end\",\"data\":{}}", "success 1")]
    public async Task A_streamed_run_answered_200_is_counted_by_how_its_stream_ends(string ending, string counted)
    {
        // Langflow's own failure (an error event) and a stream that closes without "end" are failed runs, as a 5xx is;
        // an "end" is a success, even the last event without its blank line, read only with the end of the body.
        var body = new Pipe();
        using var langflow = Chain(streamed: true, _ => Task.FromResult(Ok(body)));
        langflow.BaseAddress = new Uri("http://langflow.test/");
        await body.Writer.WriteAsync(Encoding.UTF8.GetBytes("{\"event\":\"token\",\"data\":{\"chunk\":\"Hi\"}}\n\n" + ending));
        await body.Writer.CompleteAsync();

        var events = new List<string>();
        await foreach (var run in new LangflowStreamingRuns(langflow).RunAsync(Guid.NewGuid(), new SimplifiedAPIRequest(), LangflowCredential.FromApiKey("sk-test"), CancellationToken.None))
        {
            events.Add(run.Event);
            if (run.Event is "error" or "end")
            {
                break; // as the agent runtime, which reads no further
            }
        }

        Assert.Equal("token", events[0]);
        Assert.Equal([counted], Counted());
        Assert.Equal(1, _metrics.UpstreamDuration.WithLabels("langflow").Count);
    }

    [Fact]
    public async Task A_call_of_work_the_adapter_drops_is_discarded_not_canceled()
    {
        using var ragflow = Chain(streamed: false, Hang);
        using var work = new Discardable(CancellationToken.None);

        var retrieving = work.RunAsync(token => ragflow.SendAsync(Retrieval(), token));
        Assert.Null(Discardable.Active); // the work's, not its starter's
        await work.DiscardAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => retrieving);

        Assert.Equal(["discarded 1"], Counted());
    }

    [Fact]
    public async Task A_call_of_dropped_work_whose_caller_had_left_is_canceled()
    {
        using var client = new CancellationTokenSource();
        using var ragflow = Chain(streamed: false, Hang);
        using var work = new Discardable(client.Token);

        var retrieving = work.RunAsync(token => ragflow.SendAsync(Retrieval(), token));
        await client.CancelAsync();
        await work.DiscardAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => retrieving);

        Assert.Equal(["canceled 1"], Counted());
    }

    [Fact]
    public async Task A_disposed_run_deadline_no_longer_decides_the_outcome_of_later_calls_of_its_flow()
    {
        var run = RunDeadline.Start(TimeSpan.Zero, CancellationToken.None); // its time is up at once
        Assert.Same(run, RunDeadline.Active);
        run.Dispose();
        Assert.Null(RunDeadline.Active);

        // A later call in the same method, whose own caller gives up: the caller's doing, not the finished run's timeout.
        using var caller = new CancellationTokenSource();
        using var langflow = Chain(streamed: false, Hang);
        var calling = langflow.SendAsync(Run(), caller.Token);
        await caller.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => calling);

        Assert.Equal(["canceled 1"], Counted());
    }

    private static HttpRequestMessage Run() => new(HttpMethod.Post, "http://langflow.test/api/v1/run/flow?stream=true");

    private static HttpRequestMessage Retrieval() => new(HttpMethod.Post, "http://ragflow.test/api/v1/retrieval");

    private static HttpResponseMessage Ok(Pipe body) => new(HttpStatusCode.OK) { Content = new StreamContent(body.Reader.AsStream()) };

    /// <summary>An upstream that answers only when its caller gives up.</summary>
    private static async Task<HttpResponseMessage> Hang(CancellationToken cancellationToken)
    {
        await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        throw new UnreachableException();
    }

    /// <summary>
    /// An HttpClient with the handlers an upstream client gets from <see cref="UpstreamMetricsFilter"/>, in front of a
    /// stand-in upstream (an HttpClient, as in the adapter: the token it hands the handlers is its own).
    /// </summary>
    private HttpClient Chain(bool streamed, Func<CancellationToken, Task<HttpResponseMessage>> upstream) =>
        new(new CallerTokenHandler { InnerHandler = new UpstreamMetricsHandler(_metrics, "langflow", streamed) { InnerHandler = new StandIn(upstream) } });

    /// <summary>Each outcome counted, with its count.</summary>
    private List<string> Counted() =>
        [.. new[] { "success", "client_error", "server_error", "network_error", "timeout", "canceled", "discarded" }
            .Where(outcome => _metrics.UpstreamRequests.WithLabels("langflow", outcome).Value > 0)
            .Select(outcome => $"{outcome} {_metrics.UpstreamRequests.WithLabels("langflow", outcome).Value}")];

    private sealed class StandIn(Func<CancellationToken, Task<HttpResponseMessage>> answer) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => answer(cancellationToken);
    }
}
