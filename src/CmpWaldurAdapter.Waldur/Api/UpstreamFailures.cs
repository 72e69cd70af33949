using System.Net;
using Polly.CircuitBreaker;
using Polly.Timeout;
using Refit;

namespace CmpWaldurAdapter.Waldur.Api;

/// <summary>
/// Tells transient upstream failures (worth retrying later) from permanent ones. Transient: network
/// errors, timeouts, an open circuit, HTTP 408, 429 and 5xx, and database errors the driver calls transient.
/// Everything else is the request's fault.
/// </summary>
public static class UpstreamFailures
{
    public static bool IsTransient(Exception exception) => exception switch
    {
        ApiException api => IsTransientStatus(api.StatusCode),
        // No response at all (connection refused, reset, DNS): the network, not the request.
        ApiRequestException => true,
        HttpRequestException http => http.StatusCode is null || IsTransientStatus(http.StatusCode.Value),
        TimeoutRejectedException or BrokenCircuitException or TimeoutException => true,
        TaskCanceledException or OperationCanceledException => true,
        IOException => true,
        // The adapter's own database failing over, restarting or breaking a serialization: not the request's fault.
        System.Data.Common.DbException { IsTransient: true } => true,
        AggregateException aggregate => aggregate.InnerExceptions.All(IsTransient),
        _ => exception.InnerException is { } inner && IsTransient(inner),
    };

    public static bool IsTransientStatus(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

    public static bool IsNotFound(Exception exception) => exception is ApiException { StatusCode: HttpStatusCode.NotFound };

    /// <summary>A one-line description safe to show buyers and store: status and upstream message, never headers.</summary>
    public static string Describe(Exception exception) => exception switch
    {
        ApiException api => $"HTTP {(int)api.StatusCode} from {api.RequestMessage?.RequestUri?.AbsolutePath}: {Truncate(api.Content)}",
        _ => $"{exception.GetType().Name}: {Truncate(exception.Message)}",
    };

    private static string Truncate(string? text, int max = 300) =>
        string.IsNullOrEmpty(text) ? string.Empty : text.Length <= max ? text : string.Concat(text.AsSpan(0, max), "…");
}
