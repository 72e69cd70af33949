using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using CmpWaldurAdapter.Langflow.Contracts;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Langflow.Api;

/// <summary>One event of a streamed run: <c>add_message</c>, <c>token</c>, <c>end</c>, <c>error</c> or one this client does not know.</summary>
public sealed record LangflowRunEvent(string Event, JsonElement Data)
{
    /// <summary>The piece of a <c>token</c> event.</summary>
    public string? Chunk => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty("chunk", out var chunk) && chunk.ValueKind == JsonValueKind.String ? chunk.GetString() : null;

    /// <summary>The reason of an <c>error</c> event.</summary>
    public string? Error => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty("error", out var error) ? (error.ValueKind == JsonValueKind.String ? error.GetString() : error.GetRawText()) : null;

    /// <summary>The run's result of an <c>end</c> event (the shape of a non-streamed run).</summary>
    public RunResponse? Result => Data.ValueKind == JsonValueKind.Object && Data.TryGetProperty("result", out var result) && result.ValueKind == JsonValueKind.Object
        ? result.Deserialize<RunResponse>(LangflowServiceCollectionExtensions.LangflowJson)
        : null;
}

/// <summary>Langflow refused or failed a streamed run before streaming began (the status and <c>detail</c> it answered).</summary>
public sealed class LangflowRunException(HttpStatusCode status, string detail) : Exception($"Langflow answered {(int)status} to a run: {detail}")
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>
/// <c>POST /api/v1/run/{flow_id}?stream=true</c>, read incrementally. Langflow 1.4.2 writes each event as one
/// JSON object followed by a blank line (no SSE <c>data:</c> prefix; tolerated if a proxy or a later release adds it).
/// Not behind the resilience pipeline: a started stream is never retried, and its length is the run's, not an attempt's.
/// </summary>
public sealed class LangflowStreamingRuns(HttpClient http)
{
    public const string HttpClientName = "langflow-run-stream";

    /// <summary>
    /// Set on a run's request when its stream, though answered with HTTP 200, tells a failed run: an <c>error</c> event,
    /// or a body that ended without <c>end</c>. Read by the upstream metrics, which count the call when its body is let go.
    /// </summary>
    public static readonly HttpRequestOptionsKey<bool> RunFailed = new("cmp.langflow-run-failed");

    public async IAsyncEnumerable<LangflowRunEvent> RunAsync(Guid flowId, SimplifiedAPIRequest request, LangflowCredential credential, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, $"api/v1/run/{flowId}?stream=true")
        {
            Content = new ByteArrayContent(JsonSerializer.SerializeToUtf8Bytes(request, LangflowServiceCollectionExtensions.LangflowJson)),
        };
        message.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        message.Headers.TryAddWithoutValidation("Accept", "text/event-stream");
        message.Options.Set(new HttpRequestOptionsKey<LangflowCredential>(LangflowCredential.PropertyKey), credential);

        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new LangflowRunException(response.StatusCode, body.Length > 300 ? body[..300] : body);
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var pending = new StringBuilder();
        var ended = false;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length > 0)
            {
                pending.Append(line);
                continue;
            }

            if (Parse(pending) is { } parsed)
            {
                ended |= Told(message, parsed);
                yield return parsed;
            }
        }

        if (Parse(pending) is { } last)
        {
            ended |= Told(message, last);
            yield return last;
        }

        if (!ended)
        {
            message.Options.Set(RunFailed, true);
        }
    }

    /// <summary>Whether the event ends the run; an <c>error</c> marks it failed before its reader sees it (and may stop reading).</summary>
    private static bool Told(HttpRequestMessage message, LangflowRunEvent parsed)
    {
        if (parsed.Event == "error")
        {
            message.Options.Set(RunFailed, true);
        }

        return parsed.Event == "end";
    }

    private static LangflowRunEvent? Parse(StringBuilder pending)
    {
        if (pending.Length == 0)
        {
            return null;
        }

        var text = pending.ToString();
        pending.Clear();
        if (text.StartsWith("data:", StringComparison.Ordinal))
        {
            text = text[5..].TrimStart();
        }

        using var document = JsonDocument.Parse(text);
        var root = document.RootElement;
        var name = root.TryGetProperty("event", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString()! : string.Empty;
        var data = root.TryGetProperty("data", out var d) ? d.Clone() : default;
        return new LangflowRunEvent(name, data);
    }
}
