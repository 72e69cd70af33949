using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Chat;

/// <summary>
/// The request of <c>POST /v1/chat/completions</c>: OpenAI's shape (unknown fields are ignored, as OpenAI
/// clients send many), or the simple <c>{"message": "…"}</c> for curl users.
/// </summary>
public sealed class ChatCompletionRequest
{
    [JsonPropertyName("model")]
    public string? Model { get; set; }

    [JsonPropertyName("messages")]
    public List<ChatMessage>? Messages { get; set; }

    [JsonPropertyName("message")]
    public string? Message { get; set; }

    [JsonPropertyName("stream")]
    public bool? Stream { get; set; }

    [JsonPropertyName("stream_options")]
    public StreamOptions? StreamOptions { get; set; }

    [JsonPropertyName("user")]
    public string? User { get; set; }

    [JsonPropertyName("max_tokens")]
    public int? MaxTokens { get; set; }

    [JsonPropertyName("max_completion_tokens")]
    public int? MaxCompletionTokens { get; set; }

    [JsonPropertyName("temperature")]
    public double? Temperature { get; set; }

    /// <summary>OpenAI's stop sequences: a string or an array of up to four (read by <see cref="ChatService.StopSequences"/>).</summary>
    [JsonPropertyName("stop")]
    public JsonElement? Stop { get; set; }

    // OpenAI fields the agent cannot honour: ignoring them would hand the client something else than it asked for
    // (prose where it parses JSON, one choice where it reads two), so they are refused unless they ask for nothing.
    [JsonPropertyName("n")]
    public int? N { get; set; }

    [JsonPropertyName("response_format")]
    public JsonElement? ResponseFormat { get; set; }

    [JsonPropertyName("tool_choice")]
    public JsonElement? ToolChoice { get; set; }

    [JsonPropertyName("logprobs")]
    public bool? Logprobs { get; set; }

    [JsonPropertyName("top_logprobs")]
    public int? TopLogprobs { get; set; }
}

public sealed class StreamOptions
{
    [JsonPropertyName("include_usage")]
    public bool? IncludeUsage { get; set; }
}

public sealed class ChatMessage
{
    [JsonPropertyName("role")]
    public string? Role { get; set; }

    /// <summary>A string, or an array of content parts (only text parts are used).</summary>
    [JsonPropertyName("content")]
    public JsonElement Content { get; set; }

    /// <summary>The message's text: the string, or its text parts joined. Parts of other shapes (images, files) add nothing.</summary>
    [JsonIgnore]
    public string? Text => Content.ValueKind switch
    {
        JsonValueKind.String => Content.GetString(),
        JsonValueKind.Array => string.Concat(Content.EnumerateArray().Select(TextOf)),
        _ => null,
    };

    /// <summary>
    /// False when a string anywhere in the content is not Unicode text: a lone surrogate escape such as <c>"\ud83d"</c>,
    /// which JavaScript's and Python's JSON encoders write for text cut in the middle of an emoji. That is valid JSON
    /// in valid UTF-8, but <see cref="Text"/> would throw on it.
    /// </summary>
    [JsonIgnore]
    public bool ContentIsUnicode => IsUnicode(Content);

    /// <summary>Whether every string in <paramref name="value"/> is Unicode text (see <see cref="ContentIsUnicode"/>); an absent value is.</summary>
    internal static bool IsUnicode(JsonElement? value) =>
        value is not { ValueKind: not JsonValueKind.Undefined } element || EscapesAreUnicode(JsonMarshal.GetRawUtf8Value(element));

    /// <summary>
    /// Whether every <c>\u</c> escape of <paramref name="json"/> (valid JSON, as parsed) makes Unicode text: a high
    /// surrogate escape directly followed by a low one, never either alone. Unescaped text needs no check: the body
    /// was refused unless it was valid UTF-8, which cannot encode a surrogate.
    /// </summary>
    internal static bool EscapesAreUnicode(ReadOnlySpan<byte> json)
    {
        var expectingLow = false;
        for (var at = json.IndexOf((byte)'\\'); at >= 0; at = json.IndexOf((byte)'\\'))
        {
            var isUnicodeEscape = json[at + 1] == (byte)'u';
            if (expectingLow && (at > 0 || !isUnicodeEscape))
            {
                return false; // a high surrogate followed by anything but an escaped unit
            }

            if (!isUnicodeEscape)
            {
                json = json[(at + 2)..]; // \n, \", \\ and the like
                continue;
            }

            var unit = (char)ushort.Parse(json.Slice(at + 2, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
            if (expectingLow ? !char.IsLowSurrogate(unit) : char.IsLowSurrogate(unit))
            {
                return false;
            }

            expectingLow = char.IsHighSurrogate(unit);
            json = json[(at + 6)..];
        }

        return !expectingLow;
    }

    private static string? TextOf(JsonElement part) =>
        part.ValueKind == JsonValueKind.Object
        && part.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.ValueEquals("text")
        && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String
            ? text.GetString()
            : null;
}

public sealed record ChatCompletion(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChatChoice> Choices,
    [property: JsonPropertyName("usage")] ChatUsage Usage,
    [property: JsonPropertyName("system_fingerprint")] string? SystemFingerprint = null,
    [property: JsonPropertyName("citations"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? Citations = null)
{
    /// <summary>Extension field: set once the conversation was handed to a person (clients that do not know it ignore it).</summary>
    [JsonPropertyName("handoff")]
    public CmpWaldurAdapter.Capabilities.Handoff.HandoffNotice? Handoff { get; init; }
}

public sealed record ChatChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] AssistantMessage Message,
    [property: JsonPropertyName("finish_reason")] string FinishReason)
{
    /// <summary>Always null (never asked for: a request for log probabilities is refused), and present as OpenAI's is.</summary>
    [JsonPropertyName("logprobs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public JsonElement? Logprobs => null;
}

public sealed record AssistantMessage(
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] string Content)
{
    /// <summary>Always null: the agent answers or fails, it does not refuse in OpenAI's sense; present as OpenAI's is.</summary>
    [JsonPropertyName("refusal")]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Refusal => null;
}

/// <summary>OpenAI's usage block, plus the credits this request cost (an extension field clients ignore).</summary>
public sealed record ChatUsage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens,
    [property: JsonPropertyName("credits_charged")] long CreditsCharged);

public sealed record ChatCompletionChunk(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChunkChoice> Choices,
    [property: JsonPropertyName("usage"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatUsage? Usage)
{
    /// <summary>Extension field on the final chunk: the conversation was handed to a person.</summary>
    [JsonPropertyName("handoff")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CmpWaldurAdapter.Capabilities.Handoff.HandoffNotice? Handoff { get; init; }
}

/// <summary>A chunk's choice: <c>finish_reason</c> is written as null until the last content chunk, as OpenAI writes it.</summary>
public sealed record ChunkChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("delta")] ChunkDelta Delta,
    [property: JsonPropertyName("finish_reason"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason)
{
    [JsonPropertyName("logprobs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public JsonElement? Logprobs => null;
}

public sealed record ChunkDelta(
    [property: JsonPropertyName("role")] string? Role = null,
    [property: JsonPropertyName("content")] string? Content = null);

public sealed record ModelList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<ModelCard> Data);

public sealed record ModelCard(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy);
