using System.Net;
using Xunit;

namespace CmpWaldurAdapter.Testing.Web;

/// <summary>
/// A browser-like client of the buyer pages (keeps its cookies, follows no redirects) that also sends cookies another
/// site on the same domain planted (<see cref="Planted"/>). Over https it talks to the loopback adapter as a browser
/// behind a TLS-ending ingress does: <c>X-Forwarded-Proto: https</c> on every request (believed by a bed that trusts
/// forwarded headers), and its Secure and <c>__Host-</c> cookies go back, which a plain-HTTP client never sends.
/// </summary>
public sealed class TossedCookieBrowser : DelegatingHandler
{
    private readonly bool _https;
    private readonly CookieContainer _cookies = new();

    private TossedCookieBrowser(Uri baseAddress, bool https)
        : base(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false })
    {
        _https = https;
        Client = new HttpClient(this) { BaseAddress = baseAddress };
    }

    public HttpClient Client { get; }

    /// <summary>
    /// Cookies ("name=value", or any text a site can put in one) that a site on a sibling subdomain set for the whole
    /// domain: sent after the browser's own, as browsers send a cookie set later.
    /// </summary>
    public List<string> Planted { get; } = [];

    public static TossedCookieBrowser Create(Uri baseAddress, bool https) => new(baseAddress, https);

    /// <summary>A browser whose console session was opened from <paramref name="link"/>.</summary>
    public static async Task<TossedCookieBrowser> OpenConsoleAsync(Uri baseAddress, Uri link, bool https)
    {
        var browser = Create(baseAddress, https);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.Client.GetAsync(link.PathAndQuery)).StatusCode);
        return browser;
    }

    /// <summary>The value of the cookie this browser holds whose name ends in <paramref name="name"/> (prefixed or not).</summary>
    public string CookieValue(string name) =>
        _cookies.GetAllCookies().Single(c => c.Name == name || c.Name == "__Host-" + name).Value;

    /// <summary>The names of the cookies this browser holds.</summary>
    public IReadOnlyList<string> CookieNames => [.. _cookies.GetAllCookies().Select(c => c.Name)];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var address = _https ? new UriBuilder(request.RequestUri!) { Scheme = Uri.UriSchemeHttps }.Uri : request.RequestUri!;
        var cookies = new[] { _cookies.GetCookieHeader(address) }.Concat(Planted).Where(c => c.Length > 0).ToList();
        if (cookies.Count > 0)
        {
            request.Headers.TryAddWithoutValidation("Cookie", string.Join("; ", cookies));
        }

        if (_https)
        {
            request.Headers.Add("X-Forwarded-Proto", "https");
        }

        var response = await base.SendAsync(request, cancellationToken);
        foreach (var setCookie in response.Headers.TryGetValues("Set-Cookie", out var values) ? values : [])
        {
            try
            {
                _cookies.SetCookies(address, setCookie);
            }
            catch (CookieException)
            {
                // For a domain the loopback address is not under (a parent domain of the Host sent): a browser ignores it too.
            }
        }

        return response;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Client.Dispose();
        }

        base.Dispose(disposing);
    }
}
