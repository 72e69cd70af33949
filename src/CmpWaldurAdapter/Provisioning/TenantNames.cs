using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// Deterministic upstream names, derived from Waldur UUIDs so a lookup by name always finds what an earlier
/// (possibly crashed) attempt created, and the rename patterns both upstreams apply on a clash.
/// </summary>
public static partial class TenantNames
{
    /// <summary>The name of the API key the adapter mints for each tenant user.</summary>
    public const string ApiKeyName = "cmp-adapter";

    /// <summary>The Langflow user of a Waldur project.</summary>
    public static string LangflowUsername(Guid projectUuid) => "cmp-" + projectUuid.ToString("N");

    /// <summary>The Langflow project of a subscription.</summary>
    public static string LangflowProject(Guid resourceUuid) => "cmp-" + resourceUuid.ToString("N");

    /// <summary>The subscription's flow: the offering's name and the resource.</summary>
    public static string Flow(string offeringName, Guid resourceUuid) => $"{offeringName} cmp-{resourceUuid:N}";

    /// <summary>The subscription's RAGFlow dataset.</summary>
    public static string Dataset(Guid resourceUuid) => "cmp-" + resourceUuid.ToString("N");

    /// <summary>Langflow renames a clashing project or flow to "Name (1)", "Name (2)", ….</summary>
    public static bool IsLangflowTwin(string candidate, string name) =>
        candidate.Length > name.Length
        && candidate.StartsWith(name, StringComparison.Ordinal)
        && LangflowSuffix().IsMatch(candidate.AsSpan(name.Length));

    /// <summary>A flow of this resource under any offering name (the catalogue's name may have changed), twins included.</summary>
    public static bool IsFlowOf(string candidate, Guid resourceUuid)
    {
        var marker = $" cmp-{resourceUuid:N}";
        var at = candidate.LastIndexOf(marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return false;
        }

        var rest = candidate.AsSpan(at + marker.Length);
        return rest.IsEmpty || LangflowSuffix().IsMatch(rest);
    }

    /// <summary>RAGFlow renames a clashing dataset (names compare case-insensitively) to "name(1)", "name(2)", ….</summary>
    public static string RagflowTwin(string name, int number) => $"{name}({number})";

    public static bool IsRagflowTwin(string candidate, string name) =>
        candidate.Length > name.Length
        && candidate.StartsWith(name, StringComparison.OrdinalIgnoreCase)
        && RagflowSuffix().IsMatch(candidate.AsSpan(name.Length));

    [GeneratedRegex(@"^ \(\d+\)$", RegexOptions.CultureInvariant)]
    private static partial Regex LangflowSuffix();

    [GeneratedRegex(@"^\(\d+\)$", RegexOptions.CultureInvariant)]
    private static partial Regex RagflowSuffix();
}
