using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>How often a request names a cookie: see <see cref="SecureRequests.Presence"/>.</summary>
public enum CookiePresence
{
    Absent,
    Single,

    /// <summary>Named more than once, or where a browser never puts a name: a cookie planted beside or inside another.</summary>
    Ambiguous,
}

/// <summary>
/// Whether a browser reached the adapter over HTTPS, and the cookie names that follow from it. A request is secure when
/// it came over HTTPS (behind a proxy only with <see cref="WebOptions.TrustForwardedHeaders"/>) or when
/// <see cref="WebOptions.PublicBaseUrl"/> is https: then TLS ends at a proxy the adapter was not told about, and the
/// browser still talks HTTPS. Secure requests get Secure cookies, HSTS, and cookie names with the <c>__Host-</c>
/// prefix, which a browser accepts only from this very host (Secure, Path=/, no Domain): a site on a sibling subdomain
/// cannot plant one for the whole domain ("cookie tossing"). Plain-HTTP development keeps the unprefixed names, which
/// browsers refuse to prefix without Secure.
/// </summary>
public static class SecureRequests
{
    public const string HostPrefix = "__Host-";

    public static bool IsSecure(HttpContext http) =>
        http.Request.IsHttps
        || http.RequestServices.GetRequiredService<IOptions<WebOptions>>().Value.PublicBaseUrl.Scheme == Uri.UriSchemeHttps;

    /// <summary><paramref name="name"/> with the <c>__Host-</c> prefix on a secure request, as it is on a plain-HTTP one.</summary>
    public static string CookieName(HttpContext http, string name) => IsSecure(http) ? HostPrefix + name : name;

    /// <summary>
    /// Whether the request's Cookie header holds <paramref name="name"/> once, as a browser sends its own cookie. The
    /// framework keeps the last of several cookies of one name, splits on ',' as on ';', restarts after any pair it
    /// cannot read, and ignores case, so another site's cookie named alike (or hiding <c>name=…</c> in its value) would
    /// silently replace this site's: any such second sight of the name makes the cookie <see cref="CookiePresence.Ambiguous"/>.
    /// </summary>
    public static CookiePresence Presence(HttpRequest request, string name)
    {
        var (seen, proper) = (0, true);
        foreach (var sight in Sightings(request, name))
        {
            seen++;
            proper &= sight.Proper;
        }

        return seen switch
        {
            0 => CookiePresence.Absent,
            1 when proper => CookiePresence.Single,
            _ => CookiePresence.Ambiguous,
        };
    }

    /// <summary>
    /// Every sight of <paramref name="name"/> in the request's Cookie header that the framework could read as that
    /// cookie (see <see cref="Presence"/>): the name as written (any case), the text after it up to the next ';', and
    /// whether it starts a cookie as a browser sends one (at the start of the header or after "; "; else it hides in
    /// another cookie's value, after a ',' or a space).
    /// </summary>
    public static IEnumerable<(string Name, string Value, bool Proper)> Sightings(HttpRequest request, string name)
    {
        var pair = name + "=";
        foreach (var header in request.Headers.Cookie)
        {
            if (string.IsNullOrEmpty(header))
            {
                continue;
            }

            for (var at = header.IndexOf(pair, StringComparison.OrdinalIgnoreCase); at >= 0; at = header.IndexOf(pair, at + 1, StringComparison.OrdinalIgnoreCase))
            {
                // Inside a longer name (x-cmp_console=) or a value (a=b-cmp_console=): the framework reads that whole token, never this name.
                if (at > 0 && IsTokenChar(header[at - 1]))
                {
                    continue;
                }

                var before = header[..at].TrimEnd(' ', '\t');
                var valueAt = at + pair.Length;
                var end = header.IndexOf(';', valueAt);
                yield return (header.Substring(at, name.Length), header[valueAt..(end < 0 ? header.Length : end)].Trim(), before.Length == 0 || before[^1] == ';');
            }
        }
    }

    /// <summary>The value of cookie <paramref name="name"/> when the request holds it exactly once (<see cref="Presence"/>), otherwise null.</summary>
    public static string? SingleCookie(HttpRequest request, string name) =>
        Presence(request, name) == CookiePresence.Single ? request.Cookies[name] : null;

    /// <summary>A token character of RFC 9110 (cookie names are tokens).</summary>
    private static bool IsTokenChar(char c) => char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c);
}
