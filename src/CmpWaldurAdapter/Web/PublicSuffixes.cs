using System.Globalization;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// The Public Suffix List: the names under which anyone can have a site (<c>com</c>, <c>co.uk</c>, and hosts such as
/// <c>github.io</c> or <c>vercel.app</c> that give every customer a subdomain). A widget allowed on <c>*.github.io</c>
/// would answer, and spend the buyer's credits, on every GitHub Pages site.
/// </summary>
public static class PublicSuffixes
{
    private static readonly Lazy<Rules> List = new(Load);

    /// <summary>
    /// Whether others can have sites under <paramref name="domain"/> (lower case, ASCII/punycode): it is a public
    /// suffix, or one lies below it (<c>s3.amazonaws.com</c> below <c>amazonaws.com</c>, every <c>x.kawasaki.jp</c>).
    /// </summary>
    public static bool HasOthersSitesUnder(string domain) => IsPublicSuffix(domain) || List.Value.Above.Contains(domain);

    /// <summary>Whether <paramref name="domain"/> (lower case, ASCII/punycode) is itself a public suffix.</summary>
    public static bool IsPublicSuffix(string domain)
    {
        var rules = List.Value;
        if (rules.Exceptions.Contains(domain))
        {
            return false;
        }

        var dot = domain.IndexOf('.', StringComparison.Ordinal);
        return rules.Exact.Contains(domain) || (dot > 0 && rules.Wildcards.Contains(domain[(dot + 1)..]));
    }

    private static Rules Load()
    {
        using var stream = typeof(PublicSuffixes).Assembly.GetManifestResourceStream("public_suffix_list.dat")
            ?? throw new InvalidOperationException("The embedded public suffix list is missing.");
        using var reader = new StreamReader(stream);
        var idn = new IdnMapping();
        var rules = new Rules();
        while (reader.ReadLine() is { } line)
        {
            var rule = line.Trim();
            if (rule.Length == 0 || rule.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }

            var (set, name) = rule switch
            {
                ['!', .. var rest] => (rules.Exceptions, rest),
                ['*', '.', .. var rest] => (rules.Wildcards, rest),
                _ => (rules.Exact, rule),
            };
            var ascii = idn.GetAscii(name).ToLowerInvariant();
            set.Add(ascii);
            if (set != rules.Exceptions)
            {
                for (var above = set == rules.Wildcards ? ascii : Parent(ascii); above is not null; above = Parent(above))
                {
                    rules.Above.Add(above);
                }
            }
        }

        return rules;
    }

    private static string? Parent(string domain) => domain.IndexOf('.', StringComparison.Ordinal) is var dot and > 0 ? domain[(dot + 1)..] : null;

    private sealed class Rules
    {
        /// <summary>Domains with a public suffix below them.</summary>
        public HashSet<string> Above { get; } = new(StringComparer.Ordinal);

        public HashSet<string> Exact { get; } = new(StringComparer.Ordinal);

        /// <summary>Rules <c>*.name</c>: every label under <c>name</c> is a public suffix.</summary>
        public HashSet<string> Wildcards { get; } = new(StringComparer.Ordinal);

        /// <summary>Rules <c>!name</c>: not a public suffix, though a wildcard covers it.</summary>
        public HashSet<string> Exceptions { get; } = new(StringComparer.Ordinal);
    }
}
