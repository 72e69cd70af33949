using System.Globalization;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// The widget's allowed domains. An entry is an exact host (<c>shop.example.com</c>), an explicit wildcard
/// (<c>*.example.com</c>: any subdomain, not the apex), optionally with a port (<c>localhost:8080</c>).
/// A page's <c>Origin</c> is allowed when its host (and port, if the entry names one) matches an entry.
/// </summary>
public static partial class OriginRules
{
    public const int MaxEntries = 50;

    /// <summary>The most characters the entries take together, one per line: the width of the column they are stored in.</summary>
    public const int MaxListLength = 8000;

    /// <summary>
    /// The stored list (one entry per line) with <paramref name="entry"/> added, or null with an error to show next to
    /// the field when that would be more than <see cref="MaxEntries"/> entries or <see cref="MaxListLength"/> characters.
    /// </summary>
    public static string? Add(IReadOnlyList<string> current, string entry, out string error)
    {
        error = string.Empty;
        if (current.Contains(entry, StringComparer.Ordinal))
        {
            return string.Join('\n', current);
        }

        if (current.Count >= MaxEntries)
        {
            error = $"At most {MaxEntries} domains.";
            return null;
        }

        var list = string.Join('\n', current.Append(entry));
        if (list.Length > MaxListLength)
        {
            error = $"The allowed domains can take at most {MaxListLength} characters together, and this one would make them {list.Length}. Remove a domain you no longer need, or use a wildcard such as *.example.com for many subdomains.";
            return null;
        }

        return list;
    }

    /// <summary>The canonical form of an entry a buyer typed, or an error to show next to the field.</summary>
    public static bool TryNormalize(string? input, out string entry, out string error)
    {
        entry = string.Empty;
        error = string.Empty;
        var text = (input ?? string.Empty).Trim().ToLowerInvariant();
        if (text.StartsWith("https://", StringComparison.Ordinal) || text.StartsWith("http://", StringComparison.Ordinal))
        {
            text = text[(text.IndexOf("//", StringComparison.Ordinal) + 2)..];
        }

        text = text.TrimEnd('/');
        if (!EntryPattern().IsMatch(text) || text.Length > 253)
        {
            error = "Enter a host such as shop.example.com, *.example.com or localhost:8080 (no path).";
            return false;
        }

        if (text.StartsWith("*.", StringComparison.Ordinal))
        {
            var parent = SplitPort(text[2..]).Pattern;
            if (!parent.Contains('.', StringComparison.Ordinal))
            {
                error = "A wildcard needs a registrable domain: *.example.com, not *.com.";
                return false;
            }

            // *.github.io, *.co.uk, *.amazonaws.com: anyone can have a site there, so the widget would answer on theirs.
            if (PublicSuffixes.HasOthersSitesUnder(parent))
            {
                error = $"{text} would allow everyone's sites under {parent}, not only yours: enter your own, such as yourname.{parent}.";
                return false;
            }
        }

        entry = text;
        return true;
    }

    /// <summary>The origin as the browser sent it, when it matches one of <paramref name="entries"/>.</summary>
    public static bool Allows(IEnumerable<string> entries, string? origin)
    {
        if (!TryParseOrigin(origin, out var host, out var port))
        {
            return false;
        }

        foreach (var entry in entries)
        {
            var (pattern, entryPort) = SplitPort(entry);
            if (entryPort is { } required && required != port)
            {
                continue;
            }

            // A wildcard saved before such entries were refused (*.github.io) allows nothing: others' sites are there.
            if (pattern.StartsWith("*.", StringComparison.Ordinal)
                ? host.EndsWith(pattern[1..], StringComparison.Ordinal) && host.Length > pattern.Length - 1 && !PublicSuffixes.HasOthersSitesUnder(pattern[2..])
                : host == pattern)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A browser origin: <c>scheme://host[:port]</c>, http or https, nothing else.</summary>
    public static bool TryParseOrigin(string? origin, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        if (string.IsNullOrEmpty(origin) || origin == "null"
            || !Uri.TryCreate(origin, UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https")
            || uri.AbsolutePath != "/" || origin.EndsWith('/') || uri.Query.Length > 0 || uri.UserInfo.Length > 0)
        {
            return false;
        }

        host = uri.IdnHost.ToLowerInvariant();
        port = uri.Port;
        return true;
    }

    private static (string Pattern, int? Port) SplitPort(string entry)
    {
        var colon = entry.LastIndexOf(':');
        return colon > 0 && int.TryParse(entry[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            ? (entry[..colon], port)
            : (entry, null);
    }

    [GeneratedRegex(@"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$")]
    private static partial Regex EntryPattern();
}
