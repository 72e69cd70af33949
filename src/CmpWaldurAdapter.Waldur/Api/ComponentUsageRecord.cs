using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Waldur.Api;

/// <summary>
/// A component usage as Waldur returns it. Hand-written because the 8.0.5 schema types <c>usage</c> as an
/// integer while the server serialises its decimal field as a string ("12.34").
/// </summary>
public sealed class ComponentUsageRecord
{
    [JsonPropertyName("uuid")]
    public Guid? Uuid { get; set; }

    [JsonPropertyName("type")]
    public string? Type { get; set; }

    [JsonPropertyName("usage")]
    [JsonNumberHandling(JsonNumberHandling.AllowReadingFromString)]
    public decimal Usage { get; set; }

    [JsonPropertyName("billing_period")]
    public DateOnly? BillingPeriod { get; set; }

    [JsonPropertyName("resource_uuid")]
    public Guid? ResourceUuid { get; set; }

    [JsonPropertyName("date")]
    public DateTimeOffset? Date { get; set; }
}
