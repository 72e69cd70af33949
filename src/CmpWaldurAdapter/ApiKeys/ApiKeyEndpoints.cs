using System.Net;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Api;
using Microsoft.AspNetCore.Antiforgery;

namespace CmpWaldurAdapter.ApiKeys;

/// <summary>
/// <c>/v1/keys</c>: a subscription's keys, managed with one of its secret keys. A new or regenerated key
/// is in the response once and never again. Ids of other subscriptions' keys answer 404.
/// </summary>
public static class ApiKeyEndpoints
{
    public static void MapApiKeyEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var keys = endpoints.MapGroup("/v1/keys").WithTags("API keys");
        keys.MapGet("", ListAsync).WithName("ListKeys").WithSummary("List the subscription's live keys (without their secret values).")
            .Produces<KeyList>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403);
        keys.MapPost("", CreateAsync).WithName("CreateKey").WithSummary("Create a key; its value is returned once.")
            .DocumentsBody<CreateKeyRequest>().Produces<KeyView>(201).Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415);
        keys.MapPost("/{id:guid}/regenerate", RegenerateAsync).WithName("RegenerateKey").WithSummary("Give a key a new value; the old value stops working at once.")
            .Produces<KeyView>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404);
        keys.MapDelete("/{id:guid}", DeleteAsync).WithName("DeleteKey").WithSummary("Revoke a key.")
            .Produces(204).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404);

        // Mail and chat link scanners fetch links before the buyer does: the GET only offers the key, the page's
        // own form (POST with its anti-forgery token) shows it and uses the link up.
        endpoints.MapGet("/keys/reveal/{token}", RevealPageAsync).ExcludeFromDescription();
        // Opened from HomePort (without the Strict console cookie) and posted from itself (with it): not a console form.
        endpoints.MapPost("/keys/reveal/{token}", RevealAsync).ExcludeFromDescription().WithMetadata(new Web.AntiforgeryWithoutConsoleSession());
    }

    private static async Task<IResult> ListAsync(HttpContext http, ApiKeyService keys, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var list = await keys.ListAsync(caller!.Subscription.Id, cancellationToken);
        return Results.Json(new KeyList(list.Select(KeyView.From).ToList()), ApiJson.Options);
    }

    private static async Task<IResult> CreateAsync(HttpContext http, ApiKeyService keys, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var (body, error) = await ApiRequests.ReadJsonAsync<CreateKeyRequest>(http, maxBytes: 4096);
        if (error is not null)
        {
            return error;
        }

        if (body!.Name is { Length: > 100 })
        {
            return ApiErrors.InvalidRequest("The key name must be at most 100 characters.", "name");
        }

        ApiKeyKind kind;
        switch (body.Kind ?? "secret")
        {
            case "secret":
                kind = ApiKeyKind.Secret;
                break;
            case "publishable":
                kind = ApiKeyKind.Publishable;
                break;
            default:
                return ApiErrors.InvalidRequest("kind must be \"secret\" or \"publishable\".", "kind");
        }

        try
        {
            var created = await keys.CreateAsync(caller!.Subscription.Id, kind, body.Name ?? string.Empty, cancellationToken);
            return WithKey(http, KeyView.From(created.Key) with { Key = created.Plaintext }, StatusCodes.Status201Created);
        }
        catch (InvalidOperationException limit)
        {
            return ApiErrors.Problem(StatusCodes.Status409Conflict, limit.Message, "invalid_request_error", "too_many_keys");
        }
    }

    private static async Task<IResult> RegenerateAsync(Guid id, HttpContext http, ApiKeyService keys, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var regenerated = await keys.RegenerateAsync(caller!.Subscription.Id, id, cancellationToken);
        return regenerated is null
            ? ApiErrors.NotFound("No such key in this subscription.", "key_not_found", "id")
            : WithKey(http, KeyView.From(regenerated.Key) with { Key = regenerated.Plaintext }, StatusCodes.Status200OK);
    }

    /// <summary>An answer holding a key's value: no cache on the way (a proxy, a browser's) may keep a copy.</summary>
    private static IResult WithKey(HttpContext http, KeyView view, int status)
    {
        http.Response.Headers.CacheControl = "no-store";
        return Results.Json(view, ApiJson.Options, statusCode: status);
    }

    private static async Task<IResult> DeleteAsync(Guid id, HttpContext http, ApiKeyService keys, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        return await keys.RevokeAsync(caller!.Subscription.Id, id, cancellationToken)
            ? Results.NoContent()
            : ApiErrors.NotFound("No such key in this subscription.", "key_not_found", "id");
    }

    /// <summary>The link's page: a button that shows the key, or 410 when the link cannot show it any more. Uses nothing up.</summary>
    private static async Task<IResult> RevealPageAsync(string token, HttpContext http, ApiKeyService keys, IAntiforgery antiforgery, CancellationToken cancellationToken)
    {
        if (!(Plausible(token) && await keys.RevealableAsync(token, cancellationToken)))
        {
            RevealHeaders(http);
            return Gone();
        }

        var form = antiforgery.GetAndStoreTokens(http);
        RevealHeaders(http); // after the anti-forgery's own cache headers, so it has none of ours to override
        return Results.Content(Page("Your API key is ready",
            "<p>This link shows the key once. Show it when you are ready to copy it: it will not be shown again.</p>"
            + $"<form method=\"post\"><input type=\"hidden\" name=\"{WebUtility.HtmlEncode(form.FormFieldName)}\" value=\"{WebUtility.HtmlEncode(form.RequestToken)}\">"
            + "<button type=\"submit\" id=\"reveal\">Show my API key</button></form>"),
            "text/html; charset=utf-8");
    }

    /// <summary>The page's button: shows the key and uses the link up; only from the link's own page (its anti-forgery token).</summary>
    private static async Task<IResult> RevealAsync(string token, HttpContext http, ApiKeyService keys, IAntiforgery antiforgery, CancellationToken cancellationToken)
    {
        RevealHeaders(http);
        if (!http.Request.HasFormContentType || !await antiforgery.IsRequestValidAsync(http))
        {
            return Results.Content(Page("The key was not shown",
                "<p>This request did not come from the key's page, so the link was not used. Open the link again and press its button.</p>"),
                "text/html; charset=utf-8", statusCode: StatusCodes.Status400BadRequest);
        }

        var key = Plausible(token) ? await keys.RevealAsync(token, cancellationToken) : null;
        if (key is null)
        {
            return Gone();
        }

        return Results.Content(Page("Your API key",
            $"<p>Copy it now: it will not be shown again.</p><pre id=\"key\" class=\"key\">{WebUtility.HtmlEncode(key)}</pre>"
            + "<p>Use it as <code>Authorization: Bearer &lt;key&gt;</code> with the OpenAI-compatible endpoint <code>/v1/chat/completions</code>.</p>"),
            "text/html; charset=utf-8");
    }

    /// <summary>Shaped like a link token at all: anything else is not looked up.</summary>
    private static bool Plausible(string token) => token.Length is > 10 and < 100;

    private static void RevealHeaders(HttpContext http)
    {
        http.Response.Headers.CacheControl = "no-store";
        http.Response.Headers["Referrer-Policy"] = "no-referrer";
        http.Response.Headers["X-Robots-Tag"] = "noindex";
    }

    private static IResult Gone() =>
        Results.Content(Page("This link has already been used or has expired",
            "<p>For your security a key is shown only once. Create a new key in the buyer console or with the API.</p>"),
            "text/html; charset=utf-8", statusCode: StatusCodes.Status410Gone);

    /// <summary>Styled by the pages' style sheet: their policy (style-src 'self') refuses inline styles.</summary>
    private static string Page(string title, string body) =>
        $"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title>"
        + "<link rel=\"stylesheet\" href=\"/app.css\">"
        + $"</head><body><main class=\"narrow\"><h1>{title}</h1>{body}</main></body></html>";

    private sealed class CreateKeyRequest
    {
        /// <summary>A label for the key, e.g. the server that uses it.</summary>
        public string? Name { get; set; }

        /// <summary><c>secret</c> (default) or <c>publishable</c> (widget only).</summary>
        public string? Kind { get; set; }
    }

    private sealed record KeyList([property: JsonPropertyName("data")] IReadOnlyList<KeyView> Data, [property: JsonPropertyName("object")] string Object = "list");

    private sealed record KeyView(
        [property: JsonPropertyName("id")] Guid Id,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("kind")] string Kind,
        [property: JsonPropertyName("prefix")] string Prefix,
        [property: JsonPropertyName("created_at")] DateTimeOffset CreatedAt,
        [property: JsonPropertyName("last_used_at")] DateTimeOffset? LastUsedAt,
        [property: JsonPropertyName("key")] string? Key = null)
    {
        public static KeyView From(ApiKey key) =>
            new(key.Id, key.Name, key.Kind == ApiKeyKind.Secret ? "secret" : "publishable", key.Prefix, key.CreatedAt, key.LastUsedAt);
    }
}
