using System.Net;
using System.Runtime.ExceptionServices;
using System.Text;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>What the three readers share: resilience settings, failure mapping and file names.</summary>
internal static class SourceHttp
{
    public static string Name(SourceKind kind) => kind switch
    {
        SourceKind.Url => "The web site",
        SourceKind.Notion => "Notion",
        SourceKind.Confluence => "Confluence",
        _ => "The source",
    };

    /// <summary>Retries transient failures (honouring Retry-After), never our own SSRF refusals.</summary>
    public static void Configure(HttpStandardResilienceOptions resilience, TimeSpan attemptTimeout, int retries, TimeSpan retryDelay, TimeSpan? totalTimeout = null)
    {
        resilience.AttemptTimeout.Timeout = attemptTimeout;
        resilience.Retry.MaxRetryAttempts = Math.Max(retries, 1);
        resilience.Retry.ShouldHandle = args => ValueTask.FromResult(
            retries > 0 && HttpClientResiliencePredicates.IsTransient(args.Outcome) && FindSourceException(args.Outcome.Exception) is null);
        resilience.Retry.Delay = retryDelay;
        resilience.Retry.BackoffType = DelayBackoffType.Exponential;
        resilience.Retry.UseJitter = true;
        resilience.TotalRequestTimeout.Timeout = totalTimeout ?? (attemptTimeout * (retries + 1)) + (retryDelay * 60);
        // The options validator wants the sampling window to cover two attempts.
        resilience.CircuitBreaker.SamplingDuration = attemptTimeout * 2;
    }

    /// <summary>Sends, turning network failures, timeouts and an open circuit into <see cref="SourceUnavailableException"/>.</summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpRequestMessage request, SourceKind kind, CancellationToken cancellationToken, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        try
        {
            return await http.SendAsync(request, completion, cancellationToken);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested && Map(exception, kind) is { } mapped)
        {
            ExceptionDispatchInfo.Throw(mapped);
            throw;
        }
    }

    public static Exception? Map(Exception exception, SourceKind kind)
    {
        if (FindSourceException(exception) is { } own)
        {
            return own;
        }

        return exception switch
        {
            TimeoutRejectedException or TaskCanceledException or OperationCanceledException or TimeoutException =>
                new SourceUnavailableException(kind, $"{Name(kind)} did not answer in time; try again later.", exception),
            BrokenCircuitException =>
                new SourceUnavailableException(kind, $"{Name(kind)} is failing repeatedly; reading is paused briefly, try again later.", exception),
            HttpRequestException or IOException =>
                new SourceUnavailableException(kind, $"{Name(kind)} could not be reached; try again later.", exception),
            _ => null,
        };
    }

    public static SourceException? FindSourceException(Exception? exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is SourceException source)
            {
                return source;
            }
        }

        return null;
    }

    /// <summary>For statuses the readers have no specific meaning for.</summary>
    public static SourceException StatusFailure(SourceKind kind, HttpStatusCode status, string? detail = null)
    {
        var code = (int)status;
        var suffix = string.IsNullOrWhiteSpace(detail) ? string.Empty : ": " + Truncate(detail);
        return code is 408 or 429 || code >= 500
            ? new SourceUnavailableException(kind, $"{Name(kind)} is unavailable (HTTP {code}){suffix}; try again later.")
            : new SourceRejectedException(kind, $"{Name(kind)} refused the request (HTTP {code}){suffix}.");
    }

    public static string Truncate(string text, int max = 300) =>
        text.Length <= max ? text : string.Concat(text.AsSpan(0, max), "…");

    /// <summary>
    /// A file name safe in paths and headers: lower-case letters (any script, so non-Latin titles stay
    /// readable), digits and single dashes, then a suffix and extension.
    /// </summary>
    public static string FileName(string title, string? suffix, string extension)
    {
        var slug = new StringBuilder();
        foreach (var c in title)
        {
            if (char.IsLetterOrDigit(c) && !char.IsSurrogate(c))
            {
                slug.Append(char.ToLowerInvariant(c));
            }
            else if (slug.Length > 0 && slug[^1] != '-')
            {
                slug.Append('-');
            }

            if (slug.Length >= 60)
            {
                break;
            }
        }

        var name = slug.ToString().Trim('-');
        if (name.Length == 0)
        {
            name = "document";
        }

        return string.IsNullOrEmpty(suffix) ? $"{name}.{extension}" : $"{name}-{suffix}.{extension}";
    }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
