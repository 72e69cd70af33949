using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Capabilities.Automations;

/// <summary>The body of <c>POST /v1/runs</c>: the run's input (any JSON value; usually an object).</summary>
public sealed class AutomationRunRequest
{
    [JsonPropertyName("input")]
    public JsonElement Input { get; set; }
}

/// <summary>One automation run as the API and the console show it.</summary>
public sealed record AutomationRunView(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("trigger")] string Trigger,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("input")] JsonNode? Input,
    [property: JsonPropertyName("output")] JsonNode? Output,
    [property: JsonPropertyName("error")] string? Error,
    [property: JsonPropertyName("credits_charged")] long CreditsCharged,
    [property: JsonPropertyName("scheduled_for")] DateTimeOffset? ScheduledFor,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("finished")] long? Finished);

public sealed record AutomationRunList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<AutomationRunView> Data);
