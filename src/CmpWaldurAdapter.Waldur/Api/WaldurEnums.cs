using System.Text.Json;
using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Waldur.Api;

/// <summary>Waldur's wire spelling of generated enums (e.g. OrderState.PendingProvider → "pending-provider").</summary>
public static class WaldurEnums
{
    private static readonly JsonSerializerOptions Options = new() { Converters = { new JsonStringEnumConverter() } };

    public static string ToWire<TEnum>(TEnum value)
        where TEnum : struct, Enum => JsonSerializer.Serialize(value, Options).Trim('"');

    public static TEnum FromWire<TEnum>(string wire)
        where TEnum : struct, Enum => JsonSerializer.Deserialize<TEnum>($"\"{wire}\"", Options);

    public static string? ToWire<TEnum>(TEnum? value)
        where TEnum : struct, Enum => value is { } v ? ToWire(v) : null;
}
