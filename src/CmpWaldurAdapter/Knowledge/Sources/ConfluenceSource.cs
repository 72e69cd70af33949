using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// Reads the current pages of one Confluence Cloud space through REST API v1, each as a Markdown
/// document. The site is the buyer's choice, so it passes the same SSRF guard as URLs.
/// </summary>
public sealed partial class ConfluenceSource
{
    private readonly HttpClient _http;
    private readonly RemoteAddressGuard _guard;
    private readonly ConfluenceSourceOptions _options;
    private readonly ILogger<ConfluenceSource> _logger;

    public ConfluenceSource(
        HttpClient http,
        IHostAddressResolver resolver,
        IOptionsMonitor<UrlSourceOptions> urlOptions,
        IOptions<ConfluenceSourceOptions> options,
        ILogger<ConfluenceSource> logger)
    {
        _http = http;
        _guard = new RemoteAddressGuard(resolver, urlOptions);
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Every current page of the space <paramref name="spaceKey"/> on <paramref name="siteUrl"/> (e.g. https://acme.atlassian.net).</summary>
    public async Task<IReadOnlyList<SourceDocument>> ListAsync(Uri siteUrl, string email, string apiToken, string spaceKey, CancellationToken cancellationToken)
    {
        var site = SiteRoot(siteUrl);
        if (string.IsNullOrWhiteSpace(email) || string.IsNullOrWhiteSpace(apiToken))
        {
            throw new SourceAccessDeniedException(SourceKind.Confluence, "Confluence needs the account's email and an API token: reconnect Confluence.");
        }

        if (string.IsNullOrWhiteSpace(spaceKey) || !SpaceKeyPattern().IsMatch(spaceKey))
        {
            throw new SourceRejectedException(SourceKind.Confluence, $"'{SourceHttp.Truncate(spaceKey ?? string.Empty, 80)}' is not a Confluence space key.");
        }

        var addresses = await _guard.CheckAsync(site, SourceKind.Confluence, cancellationToken);
        var call = new Caller(_http, site, addresses, email, apiToken, spaceKey);

        // The content list answers an unknown space with an empty list; the space itself answers 404.
        await call.JsonAsync($"wiki/rest/api/space/{Uri.EscapeDataString(spaceKey)}", cancellationToken);

        var documents = new List<SourceDocument>();
        var limit = _options.PageSize;
        var start = 0;
        while (true)
        {
            var list = await call.JsonAsync(
                $"wiki/rest/api/content?spaceKey={Uri.EscapeDataString(spaceKey)}&type=page&status=current&expand=body.export_view,version&limit={limit}&start={start}",
                cancellationToken);
            var results = list.TryGetProperty("results", out var r) && r.ValueKind == JsonValueKind.Array ? r.EnumerateArray().ToList() : [];
            documents.AddRange(results.Select(page => ToDocument(site, page)).OfType<SourceDocument>());

            var size = list.TryGetProperty("size", out var s) && s.TryGetInt32(out var n) ? n : results.Count;
            // Confluence may lower the limit (it caps expanded bodies); the answer's limit is the one that counts.
            var granted = list.TryGetProperty("limit", out var g) && g.TryGetInt32(out var m) && m > 0 ? m : limit;
            var hasNext = list.TryGetProperty("_links", out var links) && SourceJson.Str(links, "next") is not null;
            if (size == 0 || size < granted || !hasNext)
            {
                break;
            }

            start += size;
        }

        _logger.LogInformation("Confluence: read {Documents} pages of space {Space} on {Host}", documents.Count, spaceKey, site.Host);
        return documents;
    }

    /// <summary>The site's root: https only (http just for loopback tests), no path beyond an optional /wiki.</summary>
    private Uri SiteRoot(Uri siteUrl)
    {
        if (siteUrl is null || !siteUrl.IsAbsoluteUri)
        {
            throw new SourceRejectedException(SourceKind.Confluence, "The Confluence site must be an absolute https address such as https://your-team.atlassian.net.");
        }

        RemoteAddressGuard.Validate(siteUrl, SourceKind.Confluence);
        if (siteUrl.Scheme != Uri.UriSchemeHttps && !_guard.AllowLoopback)
        {
            throw new SourceRejectedException(SourceKind.Confluence, "The Confluence site must use https.");
        }

        return new Uri($"{siteUrl.Scheme}://{siteUrl.Authority}/");
    }

    private SourceDocument? ToDocument(Uri site, JsonElement page)
    {
        var id = SourceJson.Str(page, "id");
        if (id is null)
        {
            return null;
        }

        var title = SourceJson.Str(page, "title") is { Length: > 0 } t ? t : "Untitled";
        var version = page.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.Object ? v : default;
        var number = version.ValueKind == JsonValueKind.Object && version.TryGetProperty("number", out var num) && num.TryGetInt64(out var value)
            ? value.ToString(CultureInfo.InvariantCulture)
            : string.Empty;
        DateTimeOffset? updatedAt = DateTimeOffset.TryParse(SourceJson.Str(version, "when"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when) ? when : null;

        var html = page.TryGetProperty("body", out var body) && body.TryGetProperty("export_view", out var view) ? SourceJson.Str(view, "value") ?? string.Empty : string.Empty;
        var text = HtmlText.Convert(html).Text;
        var markdown = text.Length == 0 ? $"# {title}\n" : $"# {title}\n\n{text}";

        // _links.webui is relative to the site's /wiki context.
        var webui = page.TryGetProperty("_links", out var links) ? SourceJson.Str(links, "webui") : null;
        var sourceUrl = webui is { Length: > 0 } && webui[0] == '/' && Uri.TryCreate(site, "wiki" + webui, out var link) ? link : null;
        if (number.Length == 0)
        {
            _logger.LogWarning("Confluence page {Id} has no version number; it will be replaced on every sync", id);
        }

        return new SourceDocument(
            $"confluence:{site.Host}:{id}",
            title,
            SourceHttp.FileName(title, id, "md"),
            "text/markdown",
            SourceHttp.Utf8(markdown),
            number,
            updatedAt,
            sourceUrl);
    }

    // Space keys are letters and digits; personal spaces start with ~.
    [System.Text.RegularExpressions.GeneratedRegex("^~?[A-Za-z0-9_-]{1,255}$")]
    private static partial System.Text.RegularExpressions.Regex SpaceKeyPattern();

    /// <summary>One buyer's calls: Basic auth with their email and token, pinned to the checked addresses.</summary>
    private sealed class Caller(HttpClient http, Uri site, IPAddress[] addresses, string email, string apiToken, string spaceKey)
    {
        private readonly AuthenticationHeaderValue _authorization =
            new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{email}:{apiToken}")));

        public async Task<JsonElement> JsonAsync(string relative, CancellationToken cancellationToken)
        {
            var uri = new Uri(site, relative);
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            request.Headers.Authorization = _authorization;
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            RemoteAddressGuard.Pin(request, uri, addresses, SourceKind.Confluence);

            using var response = await SourceHttp.SendAsync(http, request, SourceKind.Confluence, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw Failure(response.StatusCode, text);
            }

            try
            {
                using var document = JsonDocument.Parse(text);
                return document.RootElement.Clone();
            }
            catch (JsonException exception)
            {
                throw new SourceUnavailableException(SourceKind.Confluence, $"Confluence at {site.Host} answered with something that is not JSON; check the site address.", exception);
            }
        }

        private SourceException Failure(HttpStatusCode status, string body)
        {
            return status switch
            {
                HttpStatusCode.Unauthorized => new SourceAccessDeniedException(
                    SourceKind.Confluence,
                    $"Confluence rejected the email/API token for {site.Host} (expired, revoked or mistyped): create a new API token and reconnect Confluence."),
                HttpStatusCode.Forbidden => new SourceAccessDeniedException(
                    SourceKind.Confluence,
                    $"Confluence rejected the email/API token for {site.Host}: the account may not read space {spaceKey}. Grant it access or reconnect with another account."),
                HttpStatusCode.NotFound => new SourceNotFoundException(
                    SourceKind.Confluence,
                    $"Confluence at {site.Host} has no space {spaceKey}, or the account cannot see it.",
                    spaceKey),
                _ => SourceHttp.StatusFailure(SourceKind.Confluence, status, Message(body)),
            };
        }

        /// <summary>Confluence's error body carries a readable "message"; credentials never appear in it, but make sure.</summary>
        private string? Message(string body)
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                return SourceJson.Str(document.RootElement, "message")?.Replace(apiToken, "***", StringComparison.Ordinal);
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }
}
