using System.Text;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Knowledge.Connectors;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Knowledge.Sources;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Knowledge;

/// <summary>
/// <c>/v1/knowledge/…</c>: the buyer's documents in the subscription's knowledge base. Every call acts on the
/// one subscription its caller resolves to (<see cref="IKnowledgeCallerResolver"/>); ids in paths are looked up
/// only within it, and the RAGFlow dataset is always the subscription's own.
/// </summary>
public static class KnowledgeEndpoints
{
    public static void MapKnowledgeEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var group = endpoints.MapGroup("/v1/knowledge").WithTags("Knowledge");

        group.MapGet("/documents", ListDocumentsAsync).WithName("ListKnowledgeDocuments")
            .WithSummary("The knowledge base's documents with source, parse status, progress and error.")
            .Produces<DocumentList>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(409);

        group.MapPost("/documents", UploadAsync).WithName("UploadKnowledgeDocuments").DocumentsBody<UploadForm>("multipart/form-data")
            .WithSummary("Uploads one or more files (multipart/form-data, any number of `file` parts); each is parsed and costs its price once parsed.")
            .Produces<DocumentList>(201).Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        group.MapDelete("/documents/{id}", DeleteDocumentAsync).WithName("DeleteKnowledgeDocument")
            .WithSummary("Deletes a document from the knowledge base.")
            .Produces<Deleted>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(404).Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(502);

        group.MapPost("/urls", AddUrlAsync).WithName("AddKnowledgeUrl").DocumentsBody<UrlRequest>()
            .WithSummary("Fetches a public web page or file and adds it. Internal and private addresses are refused.")
            .Produces<DocumentResponse>(201).Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        group.MapGet("/connectors", ListConnectorsAsync).WithName("ListKnowledgeConnectors")
            .WithSummary("The Notion and Confluence connectors (credentials are never shown).")
            .Produces<ConnectorList>().Produces<ApiErrorBody>(401);

        group.MapPost("/connectors/notion", ConnectNotionAsync).WithName("ConnectNotion").DocumentsBody<NotionRequest>()
            .WithSummary("Connects Notion pages or databases with an internal integration token and adds every page.")
            .Produces<ConnectorSync>(201).Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        group.MapPost("/connectors/confluence", ConnectConfluenceAsync).WithName("ConnectConfluence").DocumentsBody<ConfluenceRequest>()
            .WithSummary("Connects a Confluence Cloud space (site, account email, API token, space key) and adds every current page.")
            .Produces<ConnectorSync>(201).Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        group.MapPost("/connectors/{id}/sync", SyncAsync).WithName("SyncKnowledgeConnector")
            .WithSummary("Reads the connector's source again: changed pages are replaced, removed ones deleted, unchanged ones left alone.")
            .Produces<ConnectorSync>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        group.MapPatch("/connectors/{id}", UpdateConnectorAsync).WithName("UpdateKnowledgeConnector").DocumentsBody<ConnectorUpdateRequest>()
            .WithSummary("Changes a connector's credentials (a renewed token) or what it reads, then syncs it: unchanged pages stay and are not charged again. Send only the fields to change.")
            .Produces<ConnectorSync>().Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        group.MapDelete("/connectors/{id}", DeleteConnectorAsync).WithName("DeleteKnowledgeConnector")
            .WithSummary("Deletes a connector and the pages it added; with ?keep_documents=true the pages stay as documents that are no longer synced.")
            .Produces<ConnectorDeleted>().Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(404).Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(502);
    }

    private static Task<IResult> ListDocumentsAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            await knowledge.TenantAsync(subscription, forWrite: false, cancellationToken);
            var documents = await knowledge.ListAsync(subscription, cancellationToken);
            return Results.Json(new DocumentList(documents.Select(DocumentResponse.From).ToList()), ApiJson.Options);
        });

    private static Task<IResult> UploadAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, IOptionsMonitor<KnowledgeOptions> options, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var limits = options.CurrentValue;
            if (!http.Request.HasFormContentType || !http.Request.ContentType!.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            {
                throw new KnowledgeException(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type", "Send the files as multipart/form-data, one `file` part per file.");
            }

            var tenant = await knowledge.TenantAsync(subscription, forWrite: true, cancellationToken);
            var files = await ReadFilesAsync(http, limits, cancellationToken);
            foreach (var file in files)
            {
                knowledge.Validate(file.FileName, file.Length);
            }

            await using var holds = await knowledge.EnsureRoomAsync(tenant, files.Count, 0, cancellationToken);
            var uploads = files.Select(file => (new KnowledgeFile(CleanFileName(file.FileName), string.IsNullOrEmpty(file.ContentType) ? "application/octet-stream" : file.ContentType, file.Length, file.OpenReadStream), DocumentOrigin.Upload)).ToList();

            var added = await knowledge.AddAsync(tenant, uploads, holds, cancellationToken);
            return Results.Json(new DocumentList(added.Select(DocumentResponse.From).ToList()), ApiJson.Options, statusCode: StatusCodes.Status201Created);
        });

    private static Task<IResult> DeleteDocumentAsync(HttpContext http, string id, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            if (!Guid.TryParse(id, out var documentId))
            {
                throw new KnowledgeException(StatusCodes.Status404NotFound, "document_not_found", "The knowledge base has no such document.", "id");
            }

            var tenant = await knowledge.TenantAsync(subscription, forWrite: false, cancellationToken);
            await knowledge.DeleteAsync(tenant, documentId, cancellationToken);
            return Results.Json(new Deleted(documentId, "knowledge.document", true), ApiJson.Options);
        });

    private static Task<IResult> AddUrlAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, SafeUrlFetcher fetcher, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var (body, error) = await ApiRequests.ReadJsonAsync<UrlRequest>(http);
            if (error is not null)
            {
                return error;
            }

            if (string.IsNullOrWhiteSpace(body!.Url))
            {
                throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_url", "url is required.", "url");
            }

            var tenant = await knowledge.TenantAsync(subscription, forWrite: true, cancellationToken);
            await using var holds = await knowledge.EnsureRoomAsync(tenant, 1, 0, cancellationToken);
            SourceDocument fetched;
            try
            {
                fetched = await fetcher.FetchAsync(body.Url.Trim(), cancellationToken);
            }
            catch (SourceException exception)
            {
                throw SourceErrors.ToKnowledge(exception);
            }

            knowledge.Validate(fetched.FileName, fetched.Content.LongLength, "url");
            var added = await knowledge.AddAsync(
                tenant,
                [(KnowledgeFile.FromBytes(fetched.FileName, fetched.ContentType, fetched.Content), new DocumentOrigin(DocumentSource.Url, null, fetched.ExternalId, fetched.Version, fetched.SourceUrl?.ToString()))],
                holds,
                cancellationToken);
            return Results.Json(DocumentResponse.From(added[0]), ApiJson.Options, statusCode: StatusCodes.Status201Created);
        });

    private static Task<IResult> ListConnectorsAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, ConnectorService connectors, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var list = await connectors.ListAsync(subscription, cancellationToken);
            return Results.Json(new ConnectorList(list.Select(ConnectorResponse.From).ToList()), ApiJson.Options);
        });

    private static Task<IResult> ConnectNotionAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, ConnectorService connectors, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var (body, error) = await ApiRequests.ReadJsonAsync<NotionRequest>(http);
            if (error is not null)
            {
                return error;
            }

            if (string.IsNullOrWhiteSpace(body!.IntegrationToken))
            {
                throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", "integration_token is required: the secret of a Notion internal integration shared with the pages.", "integration_token");
            }

            var ids = NotionIds(body.Ids ?? []);

            var tenant = await knowledge.TenantAsync(subscription, forWrite: true, cancellationToken);
            var (connector, outcome) = await connectors.ConnectAsync(tenant, ConnectorKind.Notion, new ConnectorSettings(NotionToken: body.IntegrationToken.Trim(), NotionIds: ids), cancellationToken);
            return Results.Json(new ConnectorSync(ConnectorResponse.From(connector), SyncResponse.From(outcome)), ApiJson.Options, statusCode: StatusCodes.Status201Created);
        });

    private static Task<IResult> ConnectConfluenceAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, ConnectorService connectors, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var (body, error) = await ApiRequests.ReadJsonAsync<ConfluenceRequest>(http);
            if (error is not null)
            {
                return error;
            }

            foreach (var (value, name) in new[] { (body!.SiteUrl, "site_url"), (body.Email, "email"), (body.ApiToken, "api_token"), (body.SpaceKey, "space_key") })
            {
                if (string.IsNullOrWhiteSpace(value))
                {
                    throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", $"{name} is required.", name);
                }
            }

            var tenant = await knowledge.TenantAsync(subscription, forWrite: true, cancellationToken);
            var settings = new ConnectorSettings(SiteUrl: body.SiteUrl!.Trim(), Email: body.Email!.Trim(), ApiToken: body.ApiToken!.Trim(), SpaceKey: body.SpaceKey!.Trim());
            var (connector, outcome) = await connectors.ConnectAsync(tenant, ConnectorKind.Confluence, settings, cancellationToken);
            return Results.Json(new ConnectorSync(ConnectorResponse.From(connector), SyncResponse.From(outcome)), ApiJson.Options, statusCode: StatusCodes.Status201Created);
        });

    private static Task<IResult> SyncAsync(HttpContext http, string id, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, ConnectorService connectors, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var connectorId = ConnectorId(id);
            var tenant = await knowledge.TenantAsync(subscription, forWrite: true, cancellationToken);
            var (connector, outcome) = await connectors.SyncAsync(tenant, connectorId, cancellationToken);
            return Results.Json(new ConnectorSync(ConnectorResponse.From(connector), SyncResponse.From(outcome)), ApiJson.Options);
        });

    private static Task<IResult> UpdateConnectorAsync(HttpContext http, string id, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, ConnectorService connectors, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var connectorId = ConnectorId(id);
            var (body, error) = await ApiRequests.ReadJsonAsync<ConnectorUpdateRequest>(http);
            if (error is not null)
            {
                return error;
            }

            var blank = new[] { (body!.IntegrationToken, "integration_token"), (body.SiteUrl, "site_url"), (body.Email, "email"), (body.ApiToken, "api_token"), (body.SpaceKey, "space_key") }
                .FirstOrDefault(f => f.Item1 is not null && string.IsNullOrWhiteSpace(f.Item1));
            if (blank.Item2 is { } name)
            {
                throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", $"{name} cannot be empty; leave it out to keep the current one.", name);
            }

            var ids = body.Ids is null ? null : NotionIds(body.Ids);

            var changes = new ConnectorSettings(body.IntegrationToken?.Trim(), ids, body.SiteUrl?.Trim(), body.Email?.Trim(), body.ApiToken?.Trim(), body.SpaceKey?.Trim());
            var tenant = await knowledge.TenantAsync(subscription, forWrite: true, cancellationToken);
            var (connector, outcome) = await connectors.UpdateAsync(tenant, connectorId, changes, cancellationToken);
            return Results.Json(new ConnectorSync(ConnectorResponse.From(connector), SyncResponse.From(outcome)), ApiJson.Options);
        });

    private static Task<IResult> DeleteConnectorAsync(HttpContext http, string id, IEnumerable<IKnowledgeCallerResolver> callers, KnowledgeBase knowledge, ConnectorService connectors, CancellationToken cancellationToken) =>
        AsCallerAsync(http, callers, async subscription =>
        {
            var connectorId = ConnectorId(id);
            var keep = http.Request.Query["keep_documents"].ToString();
            var keepDocuments = false;
            if (keep.Length > 0 && !bool.TryParse(keep, out keepDocuments))
            {
                throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", "keep_documents must be true or false.", "keep_documents");
            }

            var tenant = await knowledge.TenantAsync(subscription, forWrite: false, cancellationToken);
            var removed = await connectors.DeleteAsync(tenant, connectorId, keepDocuments, cancellationToken);
            return Results.Json(new ConnectorDeleted(connectorId, "knowledge.connector", true, removed), ApiJson.Options);
        });

    /// <summary>The Notion page or database ids a buyer gave: trimmed, without blanks and repeats, 1 to 100 of them.</summary>
    private static List<string> NotionIds(IReadOnlyList<string> given)
    {
        var ids = given.Where(i => !string.IsNullOrWhiteSpace(i)).Select(i => i.Trim()).Distinct(StringComparer.Ordinal).ToList();
        return ids.Count is 0 or > 100
            ? throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", "ids must list 1 to 100 Notion page or database ids (or their links).", "ids")
            : ids;
    }

    private static Guid ConnectorId(string id) => Guid.TryParse(id, out var connectorId)
        ? connectorId
        : throw new KnowledgeException(StatusCodes.Status404NotFound, "connector_not_found", "The knowledge base has no such connector.", "id");

    /// <summary>Resolves the caller (401 when no resolver recognises it) and turns <see cref="KnowledgeException"/> into the API's error shape.</summary>
    private static async Task<IResult> AsCallerAsync(HttpContext http, IEnumerable<IKnowledgeCallerResolver> callers, Func<Guid, Task<IResult>> action)
    {
        Guid? subscription = null;
        foreach (var caller in callers)
        {
            subscription = await caller.ResolveAsync(http, http.RequestAborted);
            if (subscription is not null)
            {
                break;
            }
        }

        if (subscription is null)
        {
            return ApiErrors.InvalidKey();
        }

        try
        {
            return await action(subscription.Value);
        }
        catch (KnowledgeException exception)
        {
            return ApiErrors.Problem(exception.Status, exception.Message, exception.Type, exception.Code, exception.Param);
        }
    }

    private static async Task<IReadOnlyList<IFormFile>> ReadFilesAsync(HttpContext http, KnowledgeOptions limits, CancellationToken cancellationToken)
    {
        // Room for the most files at the largest size; each file's own limit is checked after reading the form.
        var maxBody = (limits.MaxFileBytes * limits.MaxFilesPerUpload) + (1024 * 1024);
        if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = maxBody;
        }

        if (http.Request.ContentLength > maxBody)
        {
            throw TooLarge(limits);
        }

        http.Features.Set<IFormFeature>(new FormFeature(http.Request, new FormOptions { MultipartBodyLengthLimit = maxBody, ValueCountLimit = limits.MaxFilesPerUpload + 16 }));
        IFormCollection form;
        try
        {
            form = await http.Request.ReadFormAsync(cancellationToken);
        }
        catch (BadHttpRequestException exception) when (exception.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(limits);
        }
        catch (Exception exception) when (exception is InvalidDataException or BadHttpRequestException or IOException)
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_multipart", "The multipart body could not be read: " + exception.Message, "file");
        }

        var files = form.Files.ToList();
        if (files.Count == 0)
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "no_files", "The request has no file parts; send each file as a `file` part with its file name.", "file");
        }

        if (files.Count > limits.MaxFilesPerUpload)
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "too_many_files", $"At most {limits.MaxFilesPerUpload} files per request.", "file");
        }

        return files;
    }

    private static KnowledgeException TooLarge(KnowledgeOptions limits) =>
        new(StatusCodes.Status413PayloadTooLarge, "request_too_large", $"The request is too large: at most {limits.MaxFilesPerUpload} files of {limits.MaxFileBytes / 1024 / 1024} MB each.", "file");

    /// <summary>
    /// RAGFlow refuses a file name over 255 UTF-8 bytes (code 101), and renames a duplicate to <c>name(1).ext</c>:
    /// names are kept to this many bytes, leaving room for that suffix.
    /// </summary>
    internal const int MaxFileNameBytes = 240;

    /// <summary>
    /// The file's own name without any path, control characters or quotes (it travels in a multipart header to RAGFlow),
    /// its base name shortened to at most <see cref="MaxFileNameBytes"/> UTF-8 bytes with the extension kept.
    /// </summary>
    internal static string CleanFileName(string raw)
    {
        var name = Path.GetFileName(raw.Replace('\\', '/'));
        var clean = new string(name.Where(c => !char.IsControl(c) && c is not ('"' or '/' or ':' or '*' or '?' or '<' or '>' or '|')).ToArray()).Trim();
        if (Encoding.UTF8.GetByteCount(clean) > MaxFileNameBytes)
        {
            var extension = Path.GetExtension(clean);
            var stem = clean[..^extension.Length];
            var room = MaxFileNameBytes - Encoding.UTF8.GetByteCount(extension);
            // Whole characters only (a CJK character is 3 bytes, an emoji a surrogate pair of 4): never half of one.
            var (bytes, chars) = (0, 0);
            foreach (var rune in stem.EnumerateRunes())
            {
                if (bytes + rune.Utf8SequenceLength > room)
                {
                    break;
                }

                bytes += rune.Utf8SequenceLength;
                chars += rune.Utf16SequenceLength;
            }

            clean = stem[..chars].TrimEnd() + extension;
        }

        return clean.Length == 0 || Path.GetFileNameWithoutExtension(clean).Length == 0 ? "document" + Path.GetExtension(clean) : clean;
    }

    /// <summary>The upload form: one <c>file</c> part per file, each with its file name.</summary>
    public sealed record UploadForm([property: JsonPropertyName("file")] IReadOnlyList<IFormFile> File);

    public sealed record UrlRequest([property: JsonPropertyName("url")] string? Url);

    public sealed record NotionRequest(
        [property: JsonPropertyName("integration_token")] string? IntegrationToken,
        [property: JsonPropertyName("ids")] IReadOnlyList<string>? Ids);

    public sealed record ConfluenceRequest(
        [property: JsonPropertyName("site_url")] string? SiteUrl,
        [property: JsonPropertyName("email")] string? Email,
        [property: JsonPropertyName("api_token")] string? ApiToken,
        [property: JsonPropertyName("space_key")] string? SpaceKey);

    /// <summary>A connector's changes: Notion takes <c>integration_token</c> and <c>ids</c>; Confluence <c>site_url</c>, <c>email</c>, <c>api_token</c> and <c>space_key</c>.</summary>
    public sealed record ConnectorUpdateRequest(
        [property: JsonPropertyName("integration_token")] string? IntegrationToken = null,
        [property: JsonPropertyName("ids")] IReadOnlyList<string>? Ids = null,
        [property: JsonPropertyName("site_url")] string? SiteUrl = null,
        [property: JsonPropertyName("email")] string? Email = null,
        [property: JsonPropertyName("api_token")] string? ApiToken = null,
        [property: JsonPropertyName("space_key")] string? SpaceKey = null);

    public sealed record ConnectorDeleted(
        [property: JsonPropertyName("id")] Guid Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("deleted")] bool IsDeleted,
        [property: JsonPropertyName("documents_removed")] int DocumentsRemoved);

    /// <summary>A document as the API shows it. <c>status</c>: pending, parsing, done, failed or cancelled.</summary>
    public sealed record DocumentResponse(
        [property: JsonPropertyName("id")] Guid Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("source")] string Source,
        [property: JsonPropertyName("connector_id")] Guid? ConnectorId,
        [property: JsonPropertyName("source_url")] string? SourceUrl,
        [property: JsonPropertyName("status")] string Status,
        [property: JsonPropertyName("progress")] double Progress,
        [property: JsonPropertyName("error")] string? Error,
        [property: JsonPropertyName("size_bytes")] long SizeBytes,
        [property: JsonPropertyName("credits_charged")] long CreditsCharged,
        [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
        [property: JsonPropertyName("updated_at")] DateTimeOffset UpdatedAt)
    {
        public static DocumentResponse From(KnowledgeDocument d) => new(
            d.Id,
            "knowledge.document",
            d.Name,
            d.Source.ToString().ToLowerInvariant(),
            d.ConnectorId,
            d.SourceUrl,
            d.Status switch
            {
                ParseStates.Unstart => "pending",
                ParseStates.Running => "parsing",
                ParseStates.Done => "done",
                ParseStates.Fail => "failed",
                ParseStates.Cancel => "cancelled",
                _ => d.Status.ToLowerInvariant(),
            },
            Math.Round(d.Progress, 4),
            d.Error,
            d.SizeBytes,
            d.CreditsCharged,
            d.CreatedAt,
            d.UpdatedAt);
    }

    public sealed record DocumentList([property: JsonPropertyName("data")] IReadOnlyList<DocumentResponse> Data)
    {
        [JsonPropertyName("object")]
        public string Object => "list";
    }

    public sealed record Deleted([property: JsonPropertyName("id")] Guid Id, [property: JsonPropertyName("object")] string Object, [property: JsonPropertyName("deleted")] bool IsDeleted);

    public sealed record ConnectorResponse(
        [property: JsonPropertyName("id")] Guid Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("kind")] string Kind,
        [property: JsonPropertyName("description")] string Description,
        [property: JsonPropertyName("last_synced_at")] DateTimeOffset? LastSyncedAt,
        [property: JsonPropertyName("last_error")] string? LastError,
        [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt)
    {
        public static ConnectorResponse From(KnowledgeConnector c) =>
            new(c.Id, "knowledge.connector", c.Kind.ToString().ToLowerInvariant(), c.Description, c.LastSyncedAt, c.LastError, c.CreatedAt);
    }

    public sealed record ConnectorList([property: JsonPropertyName("data")] IReadOnlyList<ConnectorResponse> Data)
    {
        [JsonPropertyName("object")]
        public string Object => "list";
    }

    public sealed record SyncResponse(
        [property: JsonPropertyName("added")] int Added,
        [property: JsonPropertyName("replaced")] int Replaced,
        [property: JsonPropertyName("removed")] int Removed,
        [property: JsonPropertyName("unchanged")] int Unchanged,
        [property: JsonPropertyName("skipped")] int Skipped)
    {
        public static SyncResponse From(SyncOutcome o) => new(o.Added, o.Replaced, o.Removed, o.Unchanged, o.Skipped);
    }

    public sealed record ConnectorSync([property: JsonPropertyName("connector")] ConnectorResponse Connector, [property: JsonPropertyName("sync")] SyncResponse Sync);
}
