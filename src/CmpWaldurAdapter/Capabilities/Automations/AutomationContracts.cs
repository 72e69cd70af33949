using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Api;

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

/// <summary>A page of runs in OpenAI's list shape; first_id and last_id are null on an empty page.</summary>
public sealed record AutomationRunList(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<AutomationRunView> Data,
    [property: JsonPropertyName("first_id"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FirstId,
    [property: JsonPropertyName("last_id"), JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? LastId,
    [property: JsonPropertyName("has_more")] bool HasMore)
{
    public static AutomationRunList Of(ListPage<AutomationRunView> page) =>
        new("list", page.Data, page.Data.Count > 0 ? page.Data[0].Id : null, page.Data.Count > 0 ? page.Data[^1].Id : null, page.HasMore);
}
