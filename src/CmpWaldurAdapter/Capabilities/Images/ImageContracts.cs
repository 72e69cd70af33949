using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Capabilities.Images;

/// <summary>OpenAI's image generation request (fields other than these are ignored).</summary>
public sealed class ImageGenerationRequest
{
    [JsonPropertyName("prompt")]
    public string? Prompt { get; set; }

    [JsonPropertyName("model")]
    public string? Model { get; set; }

    [JsonPropertyName("n")]
    public int? N { get; set; }

    [JsonPropertyName("size")]
    public string? Size { get; set; }

    [JsonPropertyName("response_format")]
    public string? ResponseFormat { get; set; }

    [JsonPropertyName("user")]
    public string? User { get; set; }
}

public sealed record GeneratedImageData(
    [property: JsonPropertyName("url")] string? Url,
    [property: JsonPropertyName("b64_json")] string? B64Json,
    [property: JsonPropertyName("revised_prompt")] string? RevisedPrompt);

/// <summary>OpenAI's image response, plus the credits charged (an extension field clients ignore).</summary>
public sealed record ImageGenerationResponse(
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("data")] IReadOnlyList<GeneratedImageData> Data,
    [property: JsonPropertyName("credits_charged")] long CreditsCharged);
