using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.Extensions.Http;
using Prometheus;

namespace CmpWaldurAdapter.Observability;

/// <summary>Counts every upstream HTTP attempt by upstream and outcome (2xx, 4xx, 5xx, network, timeout, canceled; RAGFlow's envelope errors as 4xx or 5xx).</summary>
internal sealed class UpstreamMetricsHandler(AdapterMetrics metrics, string upstream) : DelegatingHandler
{
    /// <summary>The caller's own token, set outside the resilience pipeline: inside it, an attempt's timeout cancels the token too.</summary>
    internal static readonly HttpRequestOptionsKey<CancellationToken> CallerToken = new("cmp.caller-token");

    /// <summary>The deadline of the agent run the call is made for, if any: when it passes, the caller's token is cancelled too.</summary>
    internal static readonly HttpRequestOptionsKey<RunDeadline> Deadline = new("cmp.run-deadline");

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var timer = metrics.UpstreamDuration.WithLabels(upstream).NewTimer();
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            Record((int)response.StatusCode switch
            {
                < 400 => "success",
                < 500 => "client_error",
                _ => "server_error",
            });
            return response;
        }
        catch (OperationCanceledException)
        {
            var callerCancelled = request.Options.TryGetValue(CallerToken, out var caller) && caller.IsCancellationRequested;
            var runTimedOut = request.Options.TryGetValue(Deadline, out var deadline) && deadline.Passed;
            Record(callerCancelled && !runTimedOut ? "canceled" : "timeout");
            throw;
        }
        catch (HttpRequestException)
        {
            Record("network_error");
            throw;
        }
        catch (RagflowException envelope)
        {
            // An error in RAGFlow's envelope, whatever the HTTP status (mostly 200): its own (code 100, a 5xx) or the request's.
            Record((int)envelope.Status >= 500 || envelope.IsTransient ? "server_error" : "client_error");
            throw;
        }
    }

    private void Record(string outcome) => metrics.UpstreamRequests.WithLabels(upstream, outcome).Inc();
}

/// <summary>Remembers the caller's token and run deadline on the request, for <see cref="UpstreamMetricsHandler"/> to tell a timeout from a caller who left.</summary>
internal sealed class CallerTokenHandler : DelegatingHandler
{
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Options.Set(UpstreamMetricsHandler.CallerToken, cancellationToken);
        if (RunDeadline.Active is { } deadline)
        {
            request.Options.Set(UpstreamMetricsHandler.Deadline, deadline);
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
            builder.AdditionalHandlers.Insert(envelope is null ? builder.AdditionalHandlers.Count : builder.AdditionalHandlers.IndexOf(envelope), new UpstreamMetricsHandler(metrics, upstream));
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
