using CmpWaldurAdapter.Configuration;
using Microsoft.Extensions.Http.Resilience;
using Polly;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>An upstream's timeout and retry settings, as its options section names them.</summary>
internal interface IUpstreamRetryOptions
{
    TimeSpan AttemptTimeout { get; }

    int RetryAttempts { get; }

    TimeSpan RetryDelay { get; }
}

/// <summary>
/// The one resilience pipeline of every upstream client (Waldur, Langflow, RAGFlow): attempt and total timeouts,
/// jittered exponential retries of transient failures, and a circuit breaker, all from the upstream's options.
/// Compiled into each client library (a linked file) so they share it without depending on each other.
/// </summary>
internal static class UpstreamResilience
{
    /// <typeparam name="TOptions">The upstream's options, read when the client is first built.</typeparam>
    /// <param name="retryPost">
    /// Which POSTs may be retried: only those whose repetition changes nothing; null for none. A retried create whose
    /// first answer was lost (an attempt timeout, a proxy's 502 or 504) makes a twin (Langflow's "Name (1)", RAGFlow's
    /// "name(1)", a second Waldur offering or plan): creates are reconciled by looking first instead.
    /// </param>
    /// <param name="alsoTransient">Failures the upstream reports in its own way that are worth retrying too.</param>
    /// <param name="callerBounded">
    /// Requests whose duration their caller bounds (an agent's run, under <c>Chat:RunTimeout</c>): the attempt and total
    /// timeouts, meant for the upstream's quick calls, do not apply to them.
    /// </param>
    /// <param name="sendTime">
    /// Time a request needs beyond a quick call's (sending a large body, at a rate the options set), added to its attempt
    /// and total timeouts.
    /// </param>
    public static IHttpClientBuilder AddUpstreamResilience<TOptions>(this IHttpClientBuilder client, Func<HttpRequestMessage, bool>? retryPost, Func<Exception, bool>? alsoTransient = null, Func<HttpRequestMessage, bool>? callerBounded = null, Func<TOptions, HttpRequestMessage, TimeSpan>? sendTime = null)
        where TOptions : class, IUpstreamRetryOptions
    {
        client.AddStandardResilienceHandler()
            .Configure((HttpStandardResilienceOptions resilience, IServiceProvider sp) =>
            {
                if (ValidOptions.OrNull<TOptions>(sp) is not { } options)
                {
                    return;
                }

                resilience.AttemptTimeout.Timeout = options.AttemptTimeout;
                // Polly needs at least one attempt configured; "no retries" means handling nothing.
                resilience.Retry.MaxRetryAttempts = Math.Max(options.RetryAttempts, 1);
                resilience.Retry.ShouldHandle = args => ValueTask.FromResult(
                    options.RetryAttempts > 0
                    && MayRepeat(args.Context.GetRequestMessage(), retryPost)
                    && (HttpClientResiliencePredicates.IsTransient(args.Outcome) || (args.Outcome.Exception is { } failure && alsoTransient?.Invoke(failure) == true)));
                resilience.Retry.Delay = options.RetryDelay;
                resilience.Retry.BackoffType = DelayBackoffType.Exponential;
                resilience.Retry.UseJitter = true;

                resilience.TotalRequestTimeout.Timeout = (options.AttemptTimeout * (options.RetryAttempts + 1)) + (options.RetryDelay * 60);
                if (callerBounded is not null || sendTime is not null)
                {
                    Func<HttpRequestMessage, TimeSpan>? send = sendTime is null ? null : request => sendTime(options, request);
                    resilience.AttemptTimeout.TimeoutGenerator = args => Bound(args.Context, resilience.AttemptTimeout.Timeout, callerBounded, send);
                    resilience.TotalRequestTimeout.TimeoutGenerator = args => Bound(args.Context, resilience.TotalRequestTimeout.Timeout, callerBounded, send);
                }

                resilience.CircuitBreaker.SamplingDuration = options.AttemptTimeout * 2;
            });

        // Every attempt is counted and timed by the adapter's upstream metrics, and failures are logged where they
        // are handled; the default per-request log lines (four per call, URLs with tenant ids) add nothing but cost.
        client.RemoveAllLoggers();
        return client;
    }

    private static ValueTask<TimeSpan> Bound(ResilienceContext context, TimeSpan timeout, Func<HttpRequestMessage, bool>? callerBounded, Func<HttpRequestMessage, TimeSpan>? sendTime) =>
        ValueTask.FromResult(context.GetRequestMessage() switch
        {
            { } request when callerBounded?.Invoke(request) == true => Timeout.InfiniteTimeSpan,
            { } request when sendTime is not null => timeout + sendTime(request),
            _ => timeout,
        });

    private static bool MayRepeat(HttpRequestMessage? request, Func<HttpRequestMessage, bool>? retryPost) =>
        request is null || request.Method != HttpMethod.Post || retryPost?.Invoke(request) == true;
}
