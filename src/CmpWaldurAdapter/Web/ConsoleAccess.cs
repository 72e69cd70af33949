using System.Globalization;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>The subscription a console request acts for.</summary>
public sealed record ConsoleCaller(Subscription Subscription, int LinkVersion);

/// <summary>
/// Resolves the buyer console session of a request: exactly one subscription, or null. Unsafe methods must
/// also carry the anti-forgery token (form field or <c>RequestVerificationToken</c> header) of a page of this very
/// session (<see cref="SessionBoundAntiforgery"/>), so other sites cannot ride the session cookie, not even with a
/// token pair of their own planted beside it. Endpoints outside the console (the knowledge API) can accept it as an
/// alternative to a secret key.
/// </summary>
public interface IConsoleSession
{
    Task<ConsoleCaller?> ResolveAsync(HttpContext http, CancellationToken cancellationToken);
}

/// <summary>
/// Console links (in the Waldur resource report) and console sessions. A link is a signed token naming the
/// subscription and its console link version, valid for <see cref="WebOptions.ConsoleLinkLifetime"/>; opening it
/// sets a session cookie bound to the same version and naming a session id of its own. Rotating bumps the version:
/// every older link and session stops working at once. Signing out ends one session: its id is recorded
/// (<see cref="ConsoleSignOut"/>), so a copy of its cookie opens nothing either.
/// </summary>
public sealed class ConsoleAccess(
    SignedTokens tokens,
    BuyerWebStore store,
    IDbContextFactory<AdapterDbContext> dbs,
    IAntiforgery antiforgery,
    IOptions<WebOptions> options) : IConsoleSession
{
    /// <summary>The session cookie's name over plain HTTP; secure requests name it <c>__Host-cmp_console</c> (<see cref="SecureRequests"/>).</summary>
    public const string CookieName = "cmp_console";

    /// <summary>
    /// Says only that a session cookie was set (no secret); SameSite=Lax, so cross-site navigations carry it. Prefixed
    /// like the session's on secure requests, so one left from before the prefix does not ask every buyer to switch.
    /// </summary>
    public const string MarkerCookieName = "cmp_console_seen";
    private const string LinkPurpose = "ConsoleLink";
    private const string SessionPurpose = "ConsoleSession";

    /// <summary>A session token names the subscription, its link version and the session's own id.</summary>
    private const int SessionFieldCount = 3;

    public async Task<Uri> CreateLinkAsync(Guid subscriptionId, CancellationToken cancellationToken) =>
        LinkAt(subscriptionId, (await store.GetAsync(subscriptionId, cancellationToken)).ConsoleLinkVersion);

    /// <summary>
    /// The link of the next version and that version, not yet in force: <see cref="AdoptAsync"/> makes it so once the
    /// link is where the buyer finds it (the Waldur report), so a report that cannot be sent leaves the current links working.
    /// </summary>
    public async Task<(Uri Link, int Version)> NextLinkAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        var next = (await store.GetAsync(subscriptionId, cancellationToken)).ConsoleLinkVersion + 1;
        return (LinkAt(subscriptionId, next), next);
    }

    /// <summary>
    /// Puts <paramref name="version"/> in force: every older link and session stops working. Never goes back: two
    /// replacements at once both name the same next version, and the link of either opens the console.
    /// </summary>
    public Task AdoptAsync(Guid subscriptionId, int version, DateTimeOffset renewAt, CancellationToken cancellationToken) =>
        store.UpdateAsync(subscriptionId, s =>
        {
            s.ConsoleLinkVersion = Math.Max(s.ConsoleLinkVersion, version);
            s.ConsoleLinkRenewAt = renewAt;
        }, cancellationToken);

    /// <summary>When the link in the Waldur report is to be renewed (see <see cref="BuyerWebSettings.ConsoleLinkRenewAt"/>).</summary>
    public Task RenewLinkAtAsync(Guid subscriptionId, DateTimeOffset renewAt, CancellationToken cancellationToken) =>
        store.UpdateAsync(subscriptionId, s => s.ConsoleLinkRenewAt = renewAt, cancellationToken, buyerChange: false);

    private Uri LinkAt(Guid subscriptionId, int version)
    {
        var token = tokens.Create(LinkPurpose, options.Value.ConsoleLinkLifetime, subscriptionId.ToString("N"), Text(version));
        return options.Value.Public("console/open?t=" + Uri.EscapeDataString(token));
    }

    /// <summary>The subscription a link opens, or null for a forged, expired or rotated link.</summary>
    public async Task<ConsoleCaller?> ReadLinkAsync(string? link, CancellationToken cancellationToken) =>
        tokens.Read(LinkPurpose, link, 2) is { } fields ? await CurrentAsync(fields, cancellationToken) : null;

    /// <summary>
    /// A page that asks for itself again (a meta refresh). A navigation begun on another site (HomePort's link, a
    /// webhook's link in a ticket) carries no SameSite=Strict cookie, whatever the browser holds; asked again from
    /// here, the same page is a same-site navigation that does.
    /// </summary>
    public static readonly string SameSiteAgainPage = SameSiteAgain(null);

    /// <summary>As <see cref="SameSiteAgainPage"/>, asking for <paramref name="url"/> (a path on this site) instead.</summary>
    public static string SameSiteAgain(string? url) => PlainPage(
        "Console",
        "<p>Opening the console…</p>",
        $"<meta http-equiv=\"refresh\" content=\"0{(url is null ? string.Empty : ";url=" + System.Net.WebUtility.HtmlEncode(url))}\">");

    /// <summary>The console's plain pages (notices, questions): the shell around <paramref name="body"/>, which the caller has encoded.</summary>
    public static string PlainPage(string title, string body, string? head = null) =>
        $"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{head}<title>{title}</title><link rel=\"stylesheet\" href=\"/app.css\"></head>"
        + $"<body><main class=\"narrow\">{body}</main></body></html>";

    /// <summary>
    /// Whether this browser may be in a console whose Strict session cookie the request does not carry: a navigation
    /// from another site, told by <c>Sec-Fetch-Site</c> or, where browsers do not send it, by the Lax marker cookie
    /// that goes with every session (a marker without its session).
    /// </summary>
    public static bool MayHideSession(HttpContext http) =>
        IsCrossSiteNavigation(http.Request)
        || SessionPresence(http) switch
        {
            CookiePresence.Absent => http.Request.Cookies.ContainsKey(SecureRequests.CookieName(http, MarkerCookieName)),
            // A second session cookie (another site's, planted) hides which one is this browser's own.
            CookiePresence.Ambiguous => true,
            _ => false,
        };

    /// <summary>Whether the request carries the session cookie once, not at all, or more than once (then it has no session).</summary>
    public static CookiePresence SessionPresence(HttpContext http) => SecureRequests.Presence(http.Request, SecureRequests.CookieName(http, CookieName));

    /// <summary>The session cookie's value when the request carries it exactly once; null otherwise.</summary>
    public static string? SessionCookie(HttpContext http) => SecureRequests.SingleCookie(http.Request, SecureRequests.CookieName(http, CookieName));

    /// <summary>Whether the request is a navigation begun on another site (so without the console's Strict cookie).</summary>
    public static bool IsCrossSiteNavigation(HttpRequest request) =>
        (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method)) && request.Headers["Sec-Fetch-Site"] == "cross-site";

    /// <summary>
    /// The name of the subscription's organization (the Waldur customer), or null while the adapter has none recorded:
    /// what tells a buyer's own console from another organization's, shown in the console header and the switch question.
    /// </summary>
    public static async Task<string?> OrganizationAsync(AdapterDbContext db, Subscription subscription, CancellationToken cancellationToken)
    {
        var name = await db.Customers.AsNoTracking().Where(c => c.Id == subscription.CustomerId).Select(c => c.Name).SingleOrDefaultAsync(cancellationToken);
        return name is { Length: > 0 } ? name : null;
    }

    /// <summary>Issues the session cookie for the caller's subscription at its current link version, with a new session id.</summary>
    public void StartSession(HttpContext http, ConsoleCaller caller)
    {
        var lifetime = options.Value.ConsoleSessionLifetime;
        var token = tokens.Create(SessionPurpose, lifetime, caller.Subscription.Id.ToString("N"), Text(caller.LinkVersion), Guid.NewGuid().ToString("N"));
        var secure = SecureRequests.IsSecure(http);
        http.Response.Cookies.Append(SecureRequests.CookieName(http, CookieName), token, Cookie(SameSiteMode.Strict, "/"));
        // A __Host- cookie must have Path=/; over plain HTTP the marker keeps to the console's pages.
        http.Response.Cookies.Append(SecureRequests.CookieName(http, MarkerCookieName), "1", Cookie(SameSiteMode.Lax, secure ? "/" : "/console"));
        // Pages this response renders carry forms for the new session, not the one the request came with.
        SessionBoundAntiforgery.SessionStarted(http, token);

        CookieOptions Cookie(SameSiteMode sameSite, string path) =>
            new() { HttpOnly = true, Secure = secure, SameSite = sameSite, Path = path, MaxAge = lifetime, IsEssential = true };
    }

    /// <summary>
    /// Ends the request's session (the anti-forgery token was checked by the caller): its id is recorded as signed out
    /// until its cookie expires, and the session and marker cookies are expired. Signing out twice changes nothing more.
    /// </summary>
    public async Task SignOutAsync(HttpContext http, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (tokens.ReadExpiring(SessionPurpose, SessionCookie(http), SessionFieldCount) is ([_, _, var id], var expires)
            && Guid.TryParseExact(id, "N", out var sessionId))
        {
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            // A session signed out already (a double click, two requests at once, perhaps on two replicas) leaves the
            // insert doing nothing: recorded once, as wanted, without a unique violation EF Core would log as an error.
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO console_sign_outs (session_id, expires_at, signed_out_at)
                VALUES ({StoredValues.Uuid(db, sessionId)}, {StoredValues.Instant(db, expires)}, {StoredValues.Instant(db, clock.GetUtcNow())})
                ON CONFLICT DO NOTHING
                """, cancellationToken);
        }

        // Both names, as SecureRequests gives them: one set before the adapter knew it was behind HTTPS may be left. A
        // browser takes a __Host- expiry only when Secure (over plain HTTP there is no such cookie to expire).
        var secure = SecureRequests.IsSecure(http);
        foreach (var name in new[] { CookieName, MarkerCookieName })
        {
            http.Response.Cookies.Delete(SecureRequests.HostPrefix + name, new CookieOptions { Secure = true, Path = "/" });
            http.Response.Cookies.Delete(name, new CookieOptions { Secure = secure, Path = "/" });
        }

        // Over plain HTTP the marker keeps to the console's pages.
        http.Response.Cookies.Delete(MarkerCookieName, new CookieOptions { Secure = secure, Path = "/console" });
    }

    /// <summary>
    /// Expires, on a request whose session cookie is doubled, the cookies of that name it can: a browser sends each
    /// under the name it was set with, so each name seen (in its case) is expired for this host and for each parent
    /// domain below the public suffix (where a sibling subdomain's <c>Domain=</c> cookie lives), at the paths that reach
    /// the console (<c>/</c>, <c>/console</c>). Not reached: a cookie planted at another path or for a domain the host
    /// is not under, and one hidden in another cookie's value (its real name is not ours to guess); those leave the
    /// session doubled until they expire, and the link asks again. The session cookie the response sets is never expired.
    /// </summary>
    public static void ExpireDoubledSessionCookies(HttpContext http)
    {
        var own = SecureRequests.CookieName(http, CookieName);
        var secure = SecureRequests.IsSecure(http);
        var names = SecureRequests.Sightings(http.Request, own).Where(s => s.Proper).Select(s => s.Name).Distinct(StringComparer.Ordinal).ToList();
        foreach (var name in names)
        {
            // A browser keeps a __Host- cookie only at Path=/ and without a Domain: under the session's own name, that
            // is the cookie set next, and nothing is left to expire.
            if (name.StartsWith(SecureRequests.HostPrefix, StringComparison.Ordinal))
            {
                if (name != own)
                {
                    http.Response.Cookies.Delete(name, new CookieOptions { Secure = true, Path = "/" });
                }

                continue;
            }

            foreach (var path in new[] { "/", "/console" })
            {
                if (name != own || path != "/")
                {
                    http.Response.Cookies.Delete(name, new CookieOptions { Secure = secure, Path = path });
                }

                foreach (var domain in ParentDomains(http.Request.Host.Host))
                {
                    http.Response.Cookies.Delete(name, new CookieOptions { Secure = secure, Path = path, Domain = domain });
                }
            }
        }
    }

    /// <summary>The domains a sibling subdomain of <paramref name="host"/> could set cookies for: its parents below the public suffix.</summary>
    private static IEnumerable<string> ParentDomains(string host)
    {
        if (System.Net.IPAddress.TryParse(host, out _))
        {
            yield break;
        }

        for (var dot = host.IndexOf('.', StringComparison.Ordinal); dot > 0; dot = host.IndexOf('.', dot + 1))
        {
            var parent = host[(dot + 1)..].ToLowerInvariant();
            if (!parent.Contains('.', StringComparison.Ordinal) || PublicSuffixes.IsPublicSuffix(parent))
            {
                yield break;
            }

            yield return parent;
        }
    }

    public async Task<ConsoleCaller?> ResolveAsync(HttpContext http, CancellationToken cancellationToken)
    {
        // A cookie of before sessions had ids (two fields) is no session: it could not be signed out of.
        if (tokens.Read(SessionPurpose, SessionCookie(http), SessionFieldCount) is not [var subscription, var version, var session])
        {
            return null;
        }

        if (!HttpMethods.IsGet(http.Request.Method) && !HttpMethods.IsHead(http.Request.Method) && !await antiforgery.IsRequestValidAsync(http))
        {
            return null;
        }

        return Guid.TryParseExact(session, "N", out var sessionId) ? await CurrentAsync([subscription, version], cancellationToken, sessionId) : null;
    }

    private async Task<ConsoleCaller?> CurrentAsync(string[] fields, CancellationToken cancellationToken, Guid? sessionId = null)
    {
        if (!Guid.TryParseExact(fields[0], "N", out var subscriptionId) || !int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var version))
        {
            return null;
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        if (sessionId is { } id && await db.ConsoleSignOuts.AnyAsync(s => s.SessionId == id, cancellationToken))
        {
            return null;
        }

        var subscription = await db.Subscriptions.AsNoTracking().SingleOrDefaultAsync(s => s.Id == subscriptionId, cancellationToken);
        if (subscription is null || subscription.State is SubscriptionState.Terminated or SubscriptionState.Terminating)
        {
            return null;
        }

        var current = await db.BuyerWebSettings.AsNoTracking().Where(s => s.SubscriptionId == subscriptionId).Select(s => (int?)s.ConsoleLinkVersion).SingleOrDefaultAsync(cancellationToken) ?? 1;
        return current == version ? new ConsoleCaller(subscription, version) : null;
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
