using System.Diagnostics;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.Extensions.Http;
using Prometheus;

namespace CmpWaldurAdapter.Observability;

/// <summary>
/// Counts every upstream HTTP attempt by upstream and outcome (2xx, 4xx, 5xx, network, timeout, canceled, discarded;
/// RAGFlow's envelope errors as 4xx or 5xx), and times it. With <paramref name="streamed"/> (Langflow's streamed runs), a
/// successful attempt ends when its body does, not with its headers: a run cut mid-stream is a timeout or canceled, and
/// one whose stream tells it failed (<see cref="LangflowStreamingRuns.RunFailed"/>) is Langflow's error, as a 5xx.
/// </summary>
internal sealed class UpstreamMetricsHandler(AdapterMetrics metrics, string upstream, bool streamed = false) : DelegatingHandler
{
    /// <summary>The caller's own token, set outside the resilience pipeline: inside it, an attempt's timeout cancels the token too.</summary>
    internal static readonly HttpRequestOptionsKey<CancellationToken> CallerToken = new("cmp.caller-token");

    /// <summary>The deadline of the agent run the call is made for, if any: when it passes, the caller's token is cancelled too.</summary>
    internal static readonly HttpRequestOptionsKey<RunDeadline> Deadline = new("cmp.run-deadline");

    /// <summary>The work the call is part of when that work may be dropped (<see cref="Discardable"/>): dropping it cancels the caller's token.</summary>
    internal static readonly HttpRequestOptionsKey<Discardable> Work = new("cmp.discardable");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        HttpResponseMessage? response = null;
        Stream? body = null;
        try
        {
            response = await base.SendAsync(request, cancellationToken);
            if (streamed && (int)response.StatusCode < 400)
            {
                body = await response.Content.ReadAsStreamAsync(cancellationToken);
            }
        }
        catch (Exception failure)
        {
            response?.Dispose();
            End(OutcomeOf(request, failure, CallerCancelled(request)), started);
            throw;
        }

        if (body is not null)
        {
            // Read long after this returns: the attempt ends, and is counted once, when its body ends. Its caller is then
            // the body's reader: HttpClient's own token, handed to the handlers, hears nothing once the headers are in.
            var observed = new StreamContent(new ObservedBody(body, response.Content, (failure, whole, reader) =>
                End(failure is not null ? OutcomeOf(request, failure, reader.IsCancellationRequested)
                    : request.Options.TryGetValue(LangflowStreamingRuns.RunFailed, out var failed) && failed ? "server_error"
                    : whole || !reader.IsCancellationRequested ? "success" : CancellationOf(request, callerCancelled: true), started)));
            foreach (var header in response.Content.Headers)
            {
                observed.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

            response.Content = observed;
            return response;
        }

        End((int)response.StatusCode switch
        {
            < 400 => "success",
            < 500 => "client_error",
            _ => "server_error",
        }, started);
        return response;
    }

    private static string? OutcomeOf(HttpRequestMessage request, Exception failure, bool callerCancelled) => failure switch
    {
        OperationCanceledException => CancellationOf(request, callerCancelled),
        // A body cut mid-read fails with an IOException.
        HttpRequestException or IOException => "network_error",
        // An error in RAGFlow's envelope, whatever the HTTP status (mostly 200): its own (code 100, a 5xx) or the request's.
        RagflowException envelope => (int)envelope.Status >= 500 || envelope.IsTransient ? "server_error" : "client_error",
        _ => null,
    };

    /// <summary>Who cut a call: the run's deadline (timeout), the adapter dropping work it no longer needs, or the caller who left.</summary>
    private static string CancellationOf(HttpRequestMessage request, bool callerCancelled)
    {
        if (request.Options.TryGetValue(Work, out var work) && work.Discarded)
        {
            return "discarded";
        }

        var runTimedOut = request.Options.TryGetValue(Deadline, out var deadline) && deadline.Passed;
        return callerCancelled && !runTimedOut ? "canceled" : "timeout";
    }

    private static bool CallerCancelled(HttpRequestMessage request) =>
        request.Options.TryGetValue(CallerToken, out var caller) && caller.IsCancellationRequested;

    private void End(string? outcome, long started)
    {
        if (outcome is not null)
        {
            metrics.UpstreamRequests.WithLabels(upstream, outcome).Inc();
        }

        metrics.UpstreamDuration.WithLabels(upstream).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>
    /// A streamed body, ended once: when a read fails, or when its reader lets it go, having read it to its end (whole) or
    /// not (a success, unless the reader let go because its token was cancelled). Reported with the token of the latest
    /// read. A body read to its end is reported only when let go: its reader tells a failed run once it has read the last event.
    /// </summary>
    private sealed class ObservedBody(Stream body, HttpContent content, Action<Exception?, bool, CancellationToken> ended) : Stream
    {
        private int _ended;
        private bool _whole;
        private CancellationToken _reader;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            try
            {
                return Seen(body.Read(buffer), buffer.Length);
            }
            catch (Exception failure)
            {
                End(failure, whole: false);
                throw;
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _reader = cancellationToken;
            try
            {
                return Seen(await body.ReadAsync(buffer, cancellationToken), buffer.Length);
            }
            catch (Exception failure)
            {
                End(failure, whole: false);
                throw;
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                End(null, _whole);
                body.Dispose();
                content.Dispose();
            }

            base.Dispose(disposing);
        }

        private int Seen(int read, int asked)
        {
            if (read == 0 && asked > 0)
            {
                _whole = true;
            }

            return read;
        }

        private void End(Exception? failure, bool whole)
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                ended(failure, whole, _reader);
            }
        }
    }
}

/// <summary>Remembers the caller's token, run deadline and discardable work on the request, for <see cref="UpstreamMetricsHandler"/> to tell a timeout from a caller who left or work dropped.</summary>
internal sealed class CallerTokenHandler : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Options.Set(UpstreamMetricsHandler.CallerToken, cancellationToken);
        if (RunDeadline.Active is { } deadline)
        {
            request.Options.Set(UpstreamMetricsHandler.Deadline, deadline);
        }

        if (Discardable.Active is { } work)
        {
            request.Options.Set(UpstreamMetricsHandler.Work, work);
        }
        return base.SendAsync(request, cancellationToken);
    }
}

/// <summary>
/// Puts the metrics handler innermost (per attempt, under the retry pipeline) in every upstream client, and the
/// caller's token outermost.
/// </summary>
internal sealed class UpstreamMetricsFilter(AdapterMetrics metrics) : IHttpMessageHandlerBuilderFilter
{
    public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
    {
        next(builder);
        if (UpstreamOf(builder.Name) is { } upstream)
        {
            builder.AdditionalHandlers.Insert(0, new CallerTokenHandler());
            // Around RAGFlow's envelope handler, to see the errors RAGFlow answers with HTTP 200 (still under the retries).
            var envelope = builder.AdditionalHandlers.OfType<RagflowEnvelopeHandler>().FirstOrDefault();
            builder.AdditionalHandlers.Insert(envelope is null ? builder.AdditionalHandlers.Count : builder.AdditionalHandlers.IndexOf(envelope), new UpstreamMetricsHandler(metrics, upstream, streamed: builder.Name == LangflowStreamingRuns.HttpClientName));
        }
    };

    /// <summary>
    /// The upstream a client calls, from the client's name. The Refit clients are named after their interfaces, and every
    /// such name also holds the product's own (CmpWaldurAdapter…): so each upstream is known by its API's interface, never
    /// by the word Waldur alone, which counted every Langflow and RAGFlow call as Waldur's.
    /// </summary>
    internal static string? UpstreamOf(string? clientName) => clientName switch
    {
        null => null,
        LangflowStreamingRuns.HttpClientName => "langflow",
        _ when clientName.Contains(nameof(ILangflowApi), StringComparison.Ordinal) => "langflow",
        _ when clientName.Contains(nameof(IRagflowApi), StringComparison.Ordinal) => "ragflow",
        _ when clientName.Contains(nameof(IWaldurApi), StringComparison.Ordinal) => "waldur",
        _ => null,
    };
}
