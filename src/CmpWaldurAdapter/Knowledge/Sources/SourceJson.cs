using System.Text.Json;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>Lenient reads of upstream JSON: a missing or differently typed member is absent, not an exception.</summary>
internal static class SourceJson
{
    public static string? Str(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;
}
