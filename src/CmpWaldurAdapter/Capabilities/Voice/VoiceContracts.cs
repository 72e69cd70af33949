using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Capabilities.Voice;

/// <summary>OpenAI's text-to-speech request (fields other than these are ignored).</summary>
public sealed class SpeechRequest
{
    [JsonPropertyName("model")]
    public string? Model { get; set; }

    [JsonPropertyName("input")]
    public string? Input { get; set; }

    [JsonPropertyName("voice")]
    public string? Voice { get; set; }

    [JsonPropertyName("response_format")]
    public string? ResponseFormat { get; set; }

    [JsonPropertyName("speed")]
    public double? Speed { get; set; }
}

/// <summary>OpenAI's transcription (json response format), plus the credits charged.</summary>
public sealed record Transcription(
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("credits_charged")] long CreditsCharged);

/// <summary>The multipart form of <c>POST /v1/audio/transcriptions</c>, documented for OpenAPI.</summary>
public sealed class TranscriptionForm
{
    [JsonPropertyName("file")]
    public string? File { get; set; }

    [JsonPropertyName("model")]
    public string? Model { get; set; }

    [JsonPropertyName("language")]
    public string? Language { get; set; }

    [JsonPropertyName("response_format")]
    public string? ResponseFormat { get; set; }
}
