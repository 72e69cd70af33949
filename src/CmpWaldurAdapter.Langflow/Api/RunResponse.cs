using System.Text.Json;
using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Langflow.Api;

/// <summary>
/// The answer of <c>POST /api/v1/run/{flow}</c>, which the spec leaves untyped (<c>{}</c>): one entry per
/// input, each with one result per selected output component.
/// </summary>
public sealed class RunResponse
{
    [JsonPropertyName("session_id")]
    public string? SessionId { get; set; }

    [JsonPropertyName("outputs")]
    public List<RunOutputs> Outputs { get; set; } = [];

    /// <summary>
    /// The reply text: <c>outputs[0].outputs[0].results.message.text</c>, else the first message, else the
    /// artifacts' message (the fallbacks Langflow's own clients use). Null when the run produced no text.
    /// </summary>
    public string? Text()
    {
        var result = Outputs.FirstOrDefault()?.Outputs.FirstOrDefault(r => r is not null);
        if (result is null)
        {
            return null;
        }

        return StringAt(result.Results, "message", "text")
            ?? result.Messages?.Select(m => m.Message).FirstOrDefault(m => m is { ValueKind: JsonValueKind.String })?.GetString()
            ?? StringAt(result.Artifacts, "message");
    }

    private static string? StringAt(JsonElement? element, params string[] path)
    {
        if (element is not { } current)
        {
            return null;
        }

        foreach (var name in path)
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(name, out current))
            {
                return null;
            }
        }

        return current.ValueKind == JsonValueKind.String ? current.GetString() : null;
    }
}

/// <summary>The results for one input.</summary>
public sealed class RunOutputs
{
    [JsonPropertyName("inputs")]
    public JsonElement? Inputs { get; set; }

    [JsonPropertyName("outputs")]
    public List<RunResult?> Outputs { get; set; } = [];
}

/// <summary>What one output component produced (Langflow's <c>ResultData</c>).</summary>
public sealed class RunResult
{
    /// <summary>Usually <c>{"message": {"text", "sender", "session_id", "component_id", ...}}</c>.</summary>
    [JsonPropertyName("results")]
    public JsonElement? Results { get; set; }

    [JsonPropertyName("artifacts")]
    public JsonElement? Artifacts { get; set; }

    [JsonPropertyName("outputs")]
    public JsonElement? Outputs { get; set; }

    [JsonPropertyName("logs")]
    public JsonElement? Logs { get; set; }

    [JsonPropertyName("messages")]
    public List<RunMessage>? Messages { get; set; }

    [JsonPropertyName("component_display_name")]
    public string? ComponentDisplayName { get; set; }

    [JsonPropertyName("component_id")]
    public string? ComponentId { get; set; }

    [JsonPropertyName("timedelta")]
    public double? Timedelta { get; set; }

    [JsonPropertyName("duration")]
    public string? Duration { get; set; }
}

/// <summary>One chat message a component emitted.</summary>
public sealed class RunMessage
{
    /// <summary>A string, or in some versions a list of parts.</summary>
    [JsonPropertyName("message")]
    public JsonElement? Message { get; set; }

    [JsonPropertyName("sender")]
    public string? Sender { get; set; }

    [JsonPropertyName("sender_name")]
    public string? SenderName { get; set; }

    [JsonPropertyName("session_id")]
    public string? SessionId { get; set; }

    [JsonPropertyName("component_id")]
    public string? ComponentId { get; set; }

    [JsonPropertyName("type")]
    public string? Type { get; set; }
}
