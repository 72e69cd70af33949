using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Antiforgery;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// Ties every anti-forgery token to the console session of the page it was made for: a request token carries a hash of
/// the session cookie it was issued beside (none: empty), and is valid only with that same cookie. A pair of tokens a
/// site on a sibling subdomain got for itself (from its own session, or from none) and planted as this browser's
/// anti-forgery cookie therefore fails: the request carries the buyer's session, not the one the pair was made for. A
/// request carrying the anti-forgery cookie more than once (<see cref="CookiePresence.Ambiguous"/>) is refused outright.
/// One carrying the session cookie more than once has no session, and its tokens are tied to all the values it carries:
/// the "switch console?" form rendered then still posts (the buyer can open their link and leave the doubled state),
/// while a sessionless pair got elsewhere does not, as it does not know the buyer's own cookie. Endpoints marked
/// <see cref="AntiforgeryWithoutConsoleSession"/> skip only the session check.
/// </summary>
public sealed class SessionBoundAntiforgery : IAntiforgeryAdditionalDataProvider
{
    private static readonly object StartedSessionKey = new();

    /// <summary>Pages rendered for the rest of this request belong to the session whose cookie <paramref name="token"/> the response sets.</summary>
    public static void SessionStarted(HttpContext http, string token) => http.Items[StartedSessionKey] = Binding(token);

    public string GetAdditionalData(HttpContext context) =>
        context.Items.TryGetValue(StartedSessionKey, out var started) && started is string binding
            ? binding
            : RequestBinding(context);

    public bool ValidateAdditionalData(HttpContext context, string additionalData)
    {
        if (SecureRequests.Presence(context.Request, SecureRequests.CookieName(context, AntiforgeryCookieBuilder.PlainName)) == CookiePresence.Ambiguous)
        {
            return false;
        }

        if (context.GetEndpoint()?.Metadata.GetMetadata<AntiforgeryWithoutConsoleSession>() is not null)
        {
            return true;
        }

        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(additionalData ?? string.Empty), Encoding.UTF8.GetBytes(RequestBinding(context)));
    }

    /// <summary>The session the request carries: its hash, empty for none, and for the cookie sent twice the hash of every value sent.</summary>
    private static string RequestBinding(HttpContext http) => ConsoleAccess.SessionPresence(http) switch
    {
        CookiePresence.Single => Binding(ConsoleAccess.SessionCookie(http)!),
        CookiePresence.Absent => string.Empty,
        // Never equal to one cookie's binding: "doubled:" is not base64. Sorted: the browser's order is not the adapter's to rely on.
        _ => "doubled:" + Binding(string.Join(";", SecureRequests.Sightings(http.Request, SecureRequests.CookieName(http, ConsoleAccess.CookieName))
            .Select(s => s.Value).Order(StringComparer.Ordinal))),
    };

    private static string Binding(string sessionCookie) => Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(sessionCookie)));
}

/// <summary>
/// An endpoint whose anti-forgery token is not tied to the console session: the one-time key link's page, opened from
/// HomePort (another site, so without the Strict session cookie) and posted from itself (with it).
/// </summary>
public sealed class AntiforgeryWithoutConsoleSession;

/// <summary>
/// The anti-forgery cookie: <c>__Host-cmp_af</c> and Secure on a secure request, <c>cmp_af</c> over plain HTTP
/// (<see cref="SecureRequests"/>). The framework reads one name from its options, so the name is taken from the request
/// being served.
/// </summary>
public sealed class AntiforgeryCookieBuilder : CookieBuilder
{
    public const string PlainName = "cmp_af";

    private readonly IHttpContextAccessor _requests;

    public AntiforgeryCookieBuilder(IHttpContextAccessor requests)
    {
        _requests = requests;
        HttpOnly = true;
        SameSite = SameSiteMode.Strict;
        Path = "/";
        IsEssential = true;
    }

    public override string? Name
    {
        get => _requests.HttpContext is { } http ? SecureRequests.CookieName(http, PlainName) : PlainName;
        set
        {
            // Fixed: the framework names it only when no name is set.
        }
    }

    public override CookieOptions Build(HttpContext context, DateTimeOffset expiresFrom)
    {
        var cookie = base.Build(context, expiresFrom);
        cookie.Secure = SecureRequests.IsSecure(context);
        return cookie;
    }
}
