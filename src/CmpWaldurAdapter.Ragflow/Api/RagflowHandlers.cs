using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Ragflow.Api;

/// <summary>Adds the service account's key (<c>Authorization: Bearer ragflow-…</c>) and the adapter's User-Agent.</summary>
internal sealed class RagflowAuthHandler(IOptionsMonitor<RagflowOptions> options) : DelegatingHandler
{
    public static readonly string UserAgent =
        $"cmp-waldur-adapter/{typeof(RagflowAuthHandler).Assembly.GetName().Version?.ToString(3) ?? "0.0.0"}";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", options.CurrentValue.ApiKey);
        request.Headers.UserAgent.Clear();
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        return base.SendAsync(request, cancellationToken);
    }
}

/// <summary>
/// Turns RAGFlow's envelope errors into <see cref="RagflowException"/>: a JSON body whose <c>code</c> is not 0
/// is a failure whatever the HTTP status. Sits inside the resilience pipeline, so transient codes are retried
/// like 5xx (for the methods that retry at all).
/// </summary>
public sealed class RagflowEnvelopeHandler : DelegatingHandler
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var response = await base.SendAsync(request, cancellationToken);
        if (response.Content.Headers.ContentType?.MediaType is not "application/json")
        {
            return response;
        }

        await response.Content.LoadIntoBufferAsync(cancellationToken);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        if (TryReadError(body, out var code, out var message))
        {
            var path = request.RequestUri?.AbsolutePath ?? string.Empty;
            var status = response.StatusCode;
            response.Dispose();
            throw new RagflowException(code, message, status, path);
        }

        return response;
    }

    internal static bool TryReadError(ReadOnlySpan<byte> body, out int code, out string? message)
    {
        code = 0;
        message = null;
        try
        {
            var reader = new Utf8JsonReader(body);
            using var document = JsonDocument.ParseValue(ref reader);
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("code", out var codeElement)
                || !codeElement.TryGetInt32(out code)
                || code == RagflowErrors.Success)
            {
                return false;
            }

            message = document.RootElement.TryGetProperty("message", out var text) && text.ValueKind == JsonValueKind.String ? text.GetString() : null;
            return true;
        }
        catch (JsonException)
        {
            return false; // Not an envelope (an HTML proxy page, a health answer): Refit judges the status.
        }
    }
}
