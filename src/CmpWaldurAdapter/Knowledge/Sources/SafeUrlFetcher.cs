using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.Timeout;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// Reads one buyer-supplied URL without letting it reach inside our network: http(s) only, every
/// address of every redirect hop checked and pinned (see <see cref="RemoteAddressGuard"/>), size and
/// type limits enforced while streaming. HTML becomes a Markdown text document; other allowed types
/// are kept as they are.
/// </summary>
public sealed partial class SafeUrlFetcher
{
    private static readonly Dictionary<string, string> Extensions = new(StringComparer.OrdinalIgnoreCase)
    {
        ["text/html"] = "html",
        ["application/xhtml+xml"] = "html",
        ["text/plain"] = "txt",
        ["text/markdown"] = "md",
        ["application/pdf"] = "pdf",
        ["application/json"] = "json",
        ["text/csv"] = "csv",
    };

    private readonly HttpClient _http;
    private readonly RemoteAddressGuard _guard;
    private readonly IOptionsMonitor<UrlSourceOptions> _options;
    private readonly TimeProvider _time;
    private readonly ILogger<SafeUrlFetcher> _logger;

    public SafeUrlFetcher(HttpClient http, IHostAddressResolver resolver, IOptionsMonitor<UrlSourceOptions> options, TimeProvider time, ILogger<SafeUrlFetcher> logger)
    {
        _http = http;
        _guard = new RemoteAddressGuard(resolver, options);
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>Fetches <paramref name="url"/> and returns it as a document, or throws a <see cref="SourceException"/>.</summary>
    public async Task<SourceDocument> FetchAsync(string url, CancellationToken cancellationToken)
    {
        var options = _options.CurrentValue;
        var original = RemoteAddressGuard.ParseUrl(url, SourceKind.Url);
        using var timeout = new CancellationTokenSource(options.Timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            return await FetchAsync(original, options, linked.Token);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested && IsTimeout(exception, timeout.IsCancellationRequested))
        {
            throw new SourceUnavailableException(SourceKind.Url, $"{original.Host} did not answer within {options.Timeout.TotalSeconds:0.#} seconds; try again later.", exception);
        }
    }

    // Our own deadline or the pipeline's (whichever fires first): either way the site was too slow.
    private static bool IsTimeout(Exception exception, bool deadlinePassed)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is TimeoutRejectedException)
            {
                return true;
            }
        }

        return deadlinePassed && exception is not (SourceRejectedException or SourceNotFoundException or SourceAccessDeniedException);
    }

    private async Task<SourceDocument> FetchAsync(Uri original, UrlSourceOptions options, CancellationToken cancellationToken)
    {
        var current = original;
        for (var redirects = 0; ; redirects++)
        {
            var addresses = await _guard.CheckAsync(current, SourceKind.Url, cancellationToken);
            using var request = new HttpRequestMessage(HttpMethod.Get, current);
            RemoteAddressGuard.Pin(request, current, addresses, SourceKind.Url);
            request.Headers.Accept.ParseAdd(string.Join(", ", options.EffectiveContentTypes) + ", */*;q=0.1");

            using var response = await SourceHttp.SendAsync(_http, request, SourceKind.Url, cancellationToken, HttpCompletionOption.ResponseHeadersRead);
            if (IsRedirect(response.StatusCode))
            {
                if (redirects >= options.MaxRedirects)
                {
                    throw new SourceRejectedException(SourceKind.Url, $"{original.Host} redirected more than {options.MaxRedirects} times.");
                }

                var location = response.Headers.Location
                    ?? throw new SourceRejectedException(SourceKind.Url, $"{current.Host} answered a redirect without a location.");
                current = location.IsAbsoluteUri ? location : new Uri(current, location);
                _logger.LogDebug("URL source redirected to {Host}", current.Host);
                continue;
            }

            if (!response.IsSuccessStatusCode)
            {
                throw response.StatusCode switch
                {
                    HttpStatusCode.NotFound or HttpStatusCode.Gone =>
                        new SourceNotFoundException(SourceKind.Url, $"{current.Host} has no page at this address (HTTP {(int)response.StatusCode}).", original.AbsoluteUri),
                    HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden =>
                        new SourceAccessDeniedException(SourceKind.Url, $"{current.Host} refused access (HTTP {(int)response.StatusCode}); only public pages can be added by URL."),
                    _ => SourceHttp.StatusFailure(SourceKind.Url, response.StatusCode),
                };
            }

            var mediaType = CheckContentType(response, options);
            var body = await ReadLimitedAsync(response, options.MaxBytes, cancellationToken);
            return ToDocument(original, current, response, mediaType, body);
        }
    }

    private static bool IsRedirect(HttpStatusCode status) =>
        status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
            or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    private static string CheckContentType(HttpResponseMessage response, UrlSourceOptions options)
    {
        var mediaType = response.Content.Headers.ContentType?.MediaType?.Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(mediaType))
        {
            throw new SourceRejectedException(SourceKind.Url, "The page did not say what type of content it is.");
        }

        if (!options.EffectiveContentTypes.Contains(mediaType, StringComparer.OrdinalIgnoreCase))
        {
            throw new SourceRejectedException(SourceKind.Url, $"Content of type {mediaType} is not accepted; accepted: {string.Join(", ", options.EffectiveContentTypes)}.");
        }

        return mediaType;
    }

    private static async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, long maxBytes, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength is { } declared && declared > maxBytes)
        {
            throw TooLarge(maxBytes, $"declares {declared:N0} bytes");
        }

        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        while (true)
        {
            var read = await stream.ReadAsync(chunk, cancellationToken);
            if (read == 0)
            {
                return buffer.ToArray();
            }

            if (buffer.Length + read > maxBytes)
            {
                throw TooLarge(maxBytes, "sent more than that");
            }

            buffer.Write(chunk, 0, read);
        }
    }

    private static SourceRejectedException TooLarge(long maxBytes, string detail) =>
        new(SourceKind.Url, $"The content is larger than the {FormatSize(maxBytes)} limit (it {detail}).");

    private static string FormatSize(long bytes) => bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0
        ? $"{bytes / (1024 * 1024)} MB"
        : $"{bytes:N0} bytes";

    private static SourceDocument ToDocument(Uri original, Uri final, HttpResponseMessage response, string mediaType, byte[] body)
    {
        var etag = response.Headers.ETag?.ToString();
        var version = etag is not null ? "etag:" + etag : "sha256:" + Convert.ToHexStringLower(SHA256.HashData(body));
        var updatedAt = response.Content.Headers.LastModified;
        var externalId = "url:" + original.AbsoluteUri;

        if (mediaType is "text/html" or "application/xhtml+xml")
        {
            var html = Decode(body, response.Content.Headers.ContentType);
            var converted = HtmlText.Convert(html);
            var title = converted.Title ?? final.Host + final.AbsolutePath.TrimEnd('/');
            // The title leads the text once, so chunks near the top carry it.
            var text = converted.Title is null || converted.Text.StartsWith($"# {converted.Title}\n", StringComparison.Ordinal)
                ? converted.Text
                : $"# {converted.Title}\n\n{converted.Text}";
            return new SourceDocument(externalId, title, SourceHttp.FileName(title, null, "md"), "text/markdown", SourceHttp.Utf8(text), version, updatedAt, final);
        }

        var lastSegment = Uri.UnescapeDataString(final.Segments.LastOrDefault()?.Trim('/') ?? string.Empty);
        var name = lastSegment.Length > 0 ? lastSegment : final.Host;
        var extension = Extensions.GetValueOrDefault(mediaType, "bin");
        var baseName = name.EndsWith("." + extension, StringComparison.OrdinalIgnoreCase) ? name[..^(extension.Length + 1)] : name;
        return new SourceDocument(externalId, name, SourceHttp.FileName(baseName, null, extension), mediaType, body, version, updatedAt, final);
    }

    /// <summary>Charset from the header, else a meta tag near the top, else UTF-8.</summary>
    private static string Decode(byte[] body, MediaTypeHeaderValue? contentType)
    {
        var charset = contentType?.CharSet?.Trim('"', ' ');
        if (string.IsNullOrEmpty(charset))
        {
            var head = Encoding.ASCII.GetString(body, 0, Math.Min(body.Length, 2048));
            var match = MetaCharset().Match(head);
            charset = match.Success ? match.Groups[1].Value : null;
        }

        Encoding encoding;
        try
        {
            encoding = string.IsNullOrEmpty(charset) ? Encoding.UTF8 : Encoding.GetEncoding(charset);
        }
        catch (ArgumentException)
        {
            encoding = Encoding.UTF8;
        }

        // A BOM wins over everything, as in browsers.
        using var reader = new StreamReader(new MemoryStream(body), encoding, detectEncodingFromByteOrderMarks: true);
        return reader.ReadToEnd();
    }

    [GeneratedRegex("""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", RegexOptions.IgnoreCase)]
    private static partial Regex MetaCharset();
}
