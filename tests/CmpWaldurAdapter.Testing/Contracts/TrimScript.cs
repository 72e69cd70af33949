using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>One entry of the SPECS table in scripts/trim-openapi.py.</summary>
/// <param name="Name">Key, e.g. "waldur".</param>
/// <param name="UpstreamPath">Repository-relative path of the pinned upstream file.</param>
/// <param name="TrimmedPath">Repository-relative path of the trimmed file.</param>
/// <param name="OperationIds">The operations the trimmed file must hold, in script order.</param>
public sealed record TrimmedSpecDefinition(string Name, string UpstreamPath, string TrimmedPath, IReadOnlyList<string> OperationIds)
{
    public override string ToString() => Name;
}

/// <summary>
/// Reads the SPECS table out of scripts/trim-openapi.py so tests check the files against the
/// script itself rather than a copy of its operation lists.
/// </summary>
public static partial class TrimScript
{
    /// <summary>Every SPECS entry, including ones whose operation list is still empty.</summary>
    public static IReadOnlyList<TrimmedSpecDefinition> Read(string scriptText)
    {
        var specs = new List<TrimmedSpecDefinition>();
        foreach (Match entry in SpecEntry().Matches(scriptText))
        {
            // Comments may sit between the names; string literals in the list carry none of '#'.
            var list = string.Join('\n', entry.Groups["ops"].Value.Split('\n').Select(line => line.Split('#')[0]));
            var operations = StringLiteral().Matches(list).Select(m => m.Groups["value"].Value).ToList();
            specs.Add(new TrimmedSpecDefinition(
                entry.Groups["name"].Value,
                "openapi/upstream/" + entry.Groups["source"].Value,
                entry.Groups["target"].Value,
                operations));
        }

        if (specs.Count == 0)
        {
            throw new InvalidDataException("No SPECS entries found in the trim script; has its layout changed?");
        }

        return specs;
    }

    /// <summary>Reads the repository's script.</summary>
    public static IReadOnlyList<TrimmedSpecDefinition> ReadRepositoryScript() =>
        Read(File.ReadAllText(UpstreamSpecs.PathOf(UpstreamSpecs.TrimScriptPath)));

    [GeneratedRegex("""
        "(?<name>\w+)":\s*\{\s*"source":\s*"(?<source>[^"]+)",\s*"target":\s*"(?<target>[^"]+)",\s*"operations":\s*\[(?<ops>[^\]]*)\]
        """, RegexOptions.CultureInvariant)]
    private static partial Regex SpecEntry();

    [GeneratedRegex("""["'](?<value>[^"'\r\n]+)["']""", RegexOptions.CultureInvariant)]
    private static partial Regex StringLiteral();
}
