using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// Reads Notion pages (and every page of a database) as Markdown documents through Notion's public
/// API, with the buyer's integration token on each request (the client itself holds no credentials).
/// </summary>
/// <remarks>
/// Ids may be typed, <c>database:&lt;id&gt;</c> or <c>page:&lt;id&gt;</c>, or bare; a bare id is tried as a
/// database first and read as a page when Notion says it is not one (404 or 400). Ids may have dashes
/// or not, or be a Notion link ending in the id.
/// </remarks>
public sealed class NotionSource(HttpClient http, IOptions<NotionSourceOptions> options, ILogger<NotionSource> logger)
{
    private const int BlockPageSize = 100;
    private readonly NotionSourceOptions _options = options.Value;

    /// <summary>Every page named or contained in the named databases, each once.</summary>
    public async Task<IReadOnlyList<SourceDocument>> ListAsync(string token, IReadOnlyList<string> pageOrDatabaseIds, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(token))
        {
            throw new SourceAccessDeniedException(SourceKind.Notion, "No Notion integration token is stored: connect Notion.");
        }

        var references = pageOrDatabaseIds.Select(NotionReference.Parse).ToList();
        var call = new Caller(http, _options, token);
        var documents = new List<SourceDocument>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var reference in references)
        {
            await foreach (var page in PagesAsync(call, reference, cancellationToken))
            {
                var id = SourceJson.Str(page, "id") ?? reference.Id;
                if (IsTrashed(page) || !seen.Add(id))
                {
                    continue;
                }

                documents.Add(await ToDocumentAsync(call, id, page, cancellationToken));
            }
        }

        logger.LogInformation("Notion: read {Documents} pages from {References} ids", documents.Count, references.Count);
        return documents;
    }

    private async IAsyncEnumerable<JsonElement> PagesAsync(Caller call, NotionReference reference, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (reference.Kind == NotionReferenceKind.Page)
        {
            yield return await call.JsonAsync(HttpMethod.Get, $"v1/pages/{reference.Id}", null, reference.Id, cancellationToken);
            yield break;
        }

        string? cursor = null;
        var cursors = new HashSet<string>(StringComparer.Ordinal);
        do
        {
            var body = new JsonObject { ["page_size"] = _options.PageSize };
            if (cursor is not null)
            {
                body["start_cursor"] = cursor;
            }

            JsonElement list;
            try
            {
                list = await call.RawAsync(HttpMethod.Post, $"v1/databases/{reference.Id}/query", body, cancellationToken);
            }
            catch (NotionApiException error) when (reference.Kind == NotionReferenceKind.Unknown && cursor is null && error.MeansNotADatabase)
            {
                logger.LogDebug("Notion id {Id} is not a database ({Code}); reading it as a page", reference.Id, error.Code);
                list = default;
            }
            catch (NotionApiException error)
            {
                throw call.ToSourceException(error, reference.Id);
            }

            if (list.ValueKind == JsonValueKind.Undefined)
            {
                yield return await call.JsonAsync(HttpMethod.Get, $"v1/pages/{reference.Id}", null, reference.Id, cancellationToken);
                yield break;
            }

            foreach (var page in Results(list))
            {
                yield return page;
            }

            cursor = NextCursor(list);
            if (cursor is not null && !cursors.Add(cursor))
            {
                throw new SourceUnavailableException(SourceKind.Notion, "Notion returned the same page of results twice; try again later.");
            }
        }
        while (cursor is not null);
    }

    private async Task<SourceDocument> ToDocumentAsync(Caller call, string pageId, JsonElement page, CancellationToken cancellationToken)
    {
        var title = Title(page);
        var renderer = new NotionMarkdown(blockId => ChildrenAsync(call, blockId, pageId, cancellationToken), _options.MaxBlockDepth);
        await renderer.RenderAsync(await ChildrenAsync(call, pageId, pageId, cancellationToken));
        var markdown = renderer.Text.Length == 0 ? $"# {title}\n" : $"# {title}\n\n{renderer.Text}";

        var edited = SourceJson.Str(page, "last_edited_time");
        DateTimeOffset? updatedAt = DateTimeOffset.TryParse(edited, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : null;
        var url = SourceJson.Str(page, "url") is { } u && Uri.TryCreate(u, UriKind.Absolute, out var link) ? link : null;
        return new SourceDocument(
            "notion:" + pageId,
            title,
            SourceHttp.FileName(title, ShortId(pageId), "md"),
            "text/markdown",
            SourceHttp.Utf8(markdown),
            edited ?? string.Empty,
            updatedAt,
            url);
    }

    private static async Task<IReadOnlyList<JsonElement>> ChildrenAsync(Caller call, string blockId, string pageId, CancellationToken cancellationToken)
    {
        var blocks = new List<JsonElement>();
        string? cursor = null;
        var cursors = new HashSet<string>(StringComparer.Ordinal);
        do
        {
            var path = $"v1/blocks/{Uri.EscapeDataString(blockId)}/children?page_size={BlockPageSize}"
                + (cursor is null ? string.Empty : "&start_cursor=" + Uri.EscapeDataString(cursor));
            var list = await call.JsonAsync(HttpMethod.Get, path, null, pageId, cancellationToken);
            blocks.AddRange(Results(list));
            cursor = NextCursor(list);
            if (cursor is not null && !cursors.Add(cursor))
            {
                throw new SourceUnavailableException(SourceKind.Notion, "Notion returned the same page of blocks twice; try again later.");
            }
        }
        while (cursor is not null);

        return blocks;
    }

    private static string ShortId(string id)
    {
        var hex = id.Replace("-", string.Empty, StringComparison.Ordinal);
        return hex.Length > 8 ? hex[..8] : hex;
    }

    private static List<JsonElement> Results(JsonElement list) =>
        list.TryGetProperty("results", out var results) && results.ValueKind == JsonValueKind.Array ? [.. results.EnumerateArray()] : [];

    private static string? NextCursor(JsonElement list) =>
        list.TryGetProperty("has_more", out var more) && more.ValueKind == JsonValueKind.True ? SourceJson.Str(list, "next_cursor") : null;

    private static bool IsTrashed(JsonElement page) =>
        (page.TryGetProperty("archived", out var archived) && archived.ValueKind == JsonValueKind.True)
        || (page.TryGetProperty("in_trash", out var trash) && trash.ValueKind == JsonValueKind.True);

    /// <summary>The page's one property of type title (named "title" on pages, anything in databases).</summary>
    private static string Title(JsonElement page)
    {
        if (page.TryGetProperty("properties", out var properties) && properties.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in properties.EnumerateObject())
            {
                if (SourceJson.Str(property.Value, "type") == "title")
                {
                    var text = property.Value.TryGetProperty("title", out var items) && items.ValueKind == JsonValueKind.Array
                        ? string.Concat(items.EnumerateArray().Select(i => SourceJson.Str(i, "plain_text"))).Trim()
                        : string.Empty;
                    return text.Length > 0 ? text : "Untitled";
                }
            }
        }

        return "Untitled";
    }

    /// <summary>One buyer's calls: their token on every request, Notion errors turned into source errors.</summary>
    private sealed class Caller(HttpClient http, NotionSourceOptions options, string token)
    {
        /// <summary>Calls Notion; its errors become source errors that name <paramref name="resourceId"/>.</summary>
        public async Task<JsonElement> JsonAsync(HttpMethod method, string path, JsonObject? body, string resourceId, CancellationToken cancellationToken)
        {
            try
            {
                return await RawAsync(method, path, body, cancellationToken);
            }
            catch (NotionApiException error)
            {
                throw ToSourceException(error, resourceId);
            }
        }

        public SourceException ToSourceException(NotionApiException error, string resourceId) => error.ToSourceException(resourceId, token);

        /// <summary>Calls Notion; its errors stay <see cref="NotionApiException"/> for callers that look at the code.</summary>
        public async Task<JsonElement> RawAsync(HttpMethod method, string path, JsonObject? body, CancellationToken cancellationToken)
        {
            using var request = new HttpRequestMessage(method, path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Headers.Add("Notion-Version", options.NotionVersion);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            if (body is not null)
            {
                request.Content = JsonContent.Create(body);
            }

            using var response = await SourceHttp.SendAsync(http, request, SourceKind.Notion, cancellationToken);
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw NotionApiException.From(response.StatusCode, text);
            }

            try
            {
                using var document = JsonDocument.Parse(text);
                return document.RootElement.Clone();
            }
            catch (JsonException exception)
            {
                throw new SourceUnavailableException(SourceKind.Notion, "Notion answered with something that is not JSON; try again later.", exception);
            }
        }
    }
}

/// <summary>Notion's error object: <c>{"object":"error","status":401,"code":"unauthorized","message":"…"}</c>.</summary>
internal sealed class NotionApiException(HttpStatusCode status, string code, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;

    public string Code { get; } = code;

    /// <summary>What querying a page id as a database answers.</summary>
    public bool MeansNotADatabase => Status == HttpStatusCode.NotFound || (Status == HttpStatusCode.BadRequest && Code == "validation_error");

    public static NotionApiException From(HttpStatusCode status, string body)
    {
        string? code = null;
        string? message = null;
        try
        {
            using var document = JsonDocument.Parse(body);
            code = SourceJson.Str(document.RootElement, "code");
            message = SourceJson.Str(document.RootElement, "message");
        }
        catch (JsonException)
        {
            // A proxy's HTML error page: the status says enough.
        }

        return new NotionApiException(status, code ?? string.Empty, message ?? string.Empty);
    }

    public SourceException ToSourceException(string resourceId, string token)
    {
        // Notion does not echo tokens, but the message reaches buyers and logs: make sure.
        var detail = SourceHttp.Truncate(Message.Replace(token, "***", StringComparison.Ordinal));
        return (int)Status switch
        {
            401 => new SourceAccessDeniedException(SourceKind.Notion, "Notion rejected the integration token (expired or revoked): reconnect Notion.", this),
            403 => new SourceAccessDeniedException(SourceKind.Notion, $"Notion refused access to {resourceId}: the integration may not read it. Share it with the integration in Notion, or reconnect Notion.", this),
            404 => new SourceNotFoundException(SourceKind.Notion, $"Notion has no page or database {resourceId}, or it is not shared with the integration.", resourceId, this),
            429 => new SourceUnavailableException(SourceKind.Notion, "Notion is rate limiting requests; try again in a few minutes.", this),
            _ => SourceHttp.StatusFailure(SourceKind.Notion, Status, Code.Length > 0 ? $"{Code}: {detail}" : detail),
        };
    }
}

internal enum NotionReferenceKind
{
    Unknown,
    Page,
    Database,
}

/// <summary>A page or database id as the buyer gave it, normalised to Notion's dashed form.</summary>
internal sealed record NotionReference(NotionReferenceKind Kind, string Id)
{
    /// <summary>The reference, or null when the text is not one.</summary>
    public static NotionReference? TryParse(string raw)
    {
        try
        {
            return Parse(raw);
        }
        catch (SourceRejectedException)
        {
            return null;
        }
    }

    public static NotionReference Parse(string raw)
    {
        var text = (raw ?? string.Empty).Trim();
        var kind = NotionReferenceKind.Unknown;
        if (text.StartsWith("database:", StringComparison.OrdinalIgnoreCase))
        {
            kind = NotionReferenceKind.Database;
            text = text["database:".Length..];
        }
        else if (text.StartsWith("page:", StringComparison.OrdinalIgnoreCase))
        {
            kind = NotionReferenceKind.Page;
            text = text["page:".Length..];
        }

        // A link (…/My-Page-0123456789abcdef0123456789abcdef?v=…) ends its path in the id.
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "https" or "http")
        {
            text = uri.AbsolutePath.TrimEnd('/');
            text = text[(text.LastIndexOf('/') + 1)..];
            text = text.Length > 32 ? text[^32..] : text;
        }

        var hex = text.Replace("-", string.Empty, StringComparison.Ordinal).ToLowerInvariant();
        if (hex.Length != 32 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new SourceRejectedException(SourceKind.Notion, $"'{SourceHttp.Truncate(raw ?? string.Empty, 80)}' is not a Notion page or database id.");
        }

        return new NotionReference(kind, $"{hex[..8]}-{hex[8..12]}-{hex[12..16]}-{hex[16..20]}-{hex[20..]}");
    }
}
