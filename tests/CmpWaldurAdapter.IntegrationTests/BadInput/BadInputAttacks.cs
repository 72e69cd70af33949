using System.Text;
using CmpWaldurAdapter.Testing.Api;

namespace CmpWaldurAdapter.IntegrationTests.BadInput;

/// <summary>What a bad request must get: a 4xx (with an error message when the endpoint speaks JSON), or at least never a 5xx.</summary>
public enum Expectation
{
    ClientError,
    ClientErrorWithMessage,
    NoServerError,
}

/// <summary>One kind of bad input: whether it applies to an endpoint, how to build it, and what it must get.</summary>
public sealed record BadInputAttack(string Name, Func<PublicEndpoint, Expectation?> Applies, Func<PublicEndpoint, BadInputContext, HttpRequestMessage> Build)
{
    public override string ToString() => Name;
}

/// <summary>
/// The ids and keys of the running adapter that attacks fill into paths and headers. <see cref="OtherTenantItemIds"/>:
/// for each paged list (by its items' id prefix), an item of another tenant's list.
/// </summary>
public sealed record BadInputContext(string Key, string KeyId, string OtherTenantKeyId, string UsedRevealToken, IReadOnlyDictionary<string, string> OtherTenantItemIds);

public static class BadInputAttacks
{
    private const string Injection = "' OR '1'='1'; DROP TABLE api_keys;-- <script>alert(1)</script> ${jndi:ldap://x} {{7*7}} ../../etc/passwd";

    public static readonly IReadOnlyList<BadInputAttack> All =
    [
        // Bodies (endpoints that take one).
        Body("malformed JSON", e => e.ValidBody!.Replace(":", ",,", StringComparison.Ordinal)),
        Body("truncated JSON", e => e.ValidBody![..(e.ValidBody!.Length / 2)]),
        Body("JSON that is not an object", _ => "[1, 2, 3]"),
        Body("JSON null", _ => "null"),
        Body("wrong field types", _ => """{"name": {"nested": [true]}, "kind": 42}"""),
        // OpenAI-compatible endpoints ignore unknown fields, as OpenAI's SDKs expect; they are served, never a 5xx.
        new("unknown fields", e => !e.TakesBody ? null : e.IgnoresUnknownFields ? Expectation.NoServerError : Expectation.ClientErrorWithMessage, (e, c) =>
            Request(e, c, new StringContent(e.ValidBody!.TrimEnd('}') + """, "is_admin": true, "subscription_id": "00000000-0000-0000-0000-000000000000"}""", Encoding.UTF8, "application/json"))),
        Body("empty body", _ => string.Empty),
        Body("deeply nested JSON", _ => new string('[', 5000) + new string(']', 5000)),
        Body("injection strings in every field", _ => $$"""{"name": "{{Injection.Replace("\"", "\\\"", StringComparison.Ordinal)}}", "kind": "{{Injection}}"}"""),
        new("invalid UTF-8", e => e.TakesBody ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, new ByteArrayContent([.. "{\"name\": \""u8, 0xC3, 0x28, 0xFF, 0xFE, .. "\"}"u8]) { Headers = { { "Content-Type", "application/json" } } })),
        // Inside a field the endpoint reads (the last string of its valid body: a chat message's content, say), not an ignored one.
        new("invalid UTF-8 in a field that is read", e => e.TakesBody ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, new ByteArrayContent(InvalidUtf8InLastString(e.ValidBody!)) { Headers = { { "Content-Type", "application/json" } } })),
        new("wrong content type", e => e.TakesBody ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, new StringContent(e.ValidBody!, Encoding.UTF8, "text/plain"))),
        new("form instead of JSON", e => e.TakesBody ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, new FormUrlEncodedContent([new("name", "x")]))),

        // Size limits, on every endpoint.
        new("oversized body (2 MB)", e => e.TakesBody ? Expectation.ClientErrorWithMessage : Expectation.NoServerError, (e, c) =>
            Request(e, c, new StringContent("{\"name\": \"" + new string('x', 2 * 1024 * 1024) + "\"}", Encoding.UTF8, "application/json"))),
        new("oversized body sent chunked (2 MB, no Content-Length)", e => e.TakesBody ? Expectation.ClientErrorWithMessage : Expectation.NoServerError, (e, c) =>
            Request(e, c, new ChunkedJsonContent("{\"name\": \"" + new string('x', 2 * 1024 * 1024) + "\"}"))),
        new("very long header (64 KB)", _ => Expectation.ClientError, (e, c) =>
            Request(e, c, headers: [("X-Padding", new string('a', 64 * 1024))])),
        new("very long URL (16 KB query)", _ => Expectation.NoServerError, (e, c) =>
            Request(e, c, query: "q=" + new string('a', 16 * 1024))),

        // Injection and odd text in the query and path.
        new("injection in the query", e => e.Path.Contains("period=", StringComparison.Ordinal) ? Expectation.ClientErrorWithMessage : Expectation.NoServerError, (e, c) =>
            Request(e, c, replaceQuery: "period=" + Uri.EscapeDataString(Injection))),
        new("invalid UTF-8 in the query", e => e.Path.Contains("period=", StringComparison.Ordinal) ? Expectation.ClientErrorWithMessage : Expectation.NoServerError, (e, c) =>
            Request(e, c, replaceQuery: "period=%FF%FE%C3%28")),
        new("injection in the path id", e => e.NamesOwnedId || e.Path.Contains("{revealToken}", StringComparison.Ordinal) ? Expectation.ClientError : null, (e, c) =>
            Request(e, c with { KeyId = Uri.EscapeDataString(Injection), UsedRevealToken = Uri.EscapeDataString(Injection) })),
        new("another tenant's id", e => e.NamesOwnedId ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c with { KeyId = c.OtherTenantKeyId })),
        new("unknown id", e => e.NamesOwnedId ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c with { KeyId = Guid.NewGuid().ToString() })),

        // Paging of lists: limit 1 to 100, after an item id of this subscription's list.
        Paging("limit that is not a number", _ => "limit=ten"),
        Paging("limit of 0", _ => "limit=0"),
        Paging("limit above 100", _ => "limit=101"),
        Paging("negative limit", _ => "limit=-5"),
        Paging("malformed cursor", _ => "after=" + Uri.EscapeDataString(Injection)),
        Paging("unknown cursor", e => $"after={e.PagedBy}{Guid.NewGuid():N}"),
        new("another tenant's cursor", e => e.PagedBy is not null ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, query: "after=" + c.OtherTenantItemIds[e.PagedBy!])),

        // Credentials.
        new("no credentials", e => e.Auth == EndpointAuth.SecretKey ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, authorization: string.Empty)),
        new("injection as the key", e => e.Auth == EndpointAuth.SecretKey ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, authorization: "Bearer sk_live_' OR 1=1;--")),
        new("very long key", e => e.Auth == EndpointAuth.SecretKey ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, authorization: "Bearer sk_live_" + new string('A', 8 * 1024))),
        new("wrong scheme", e => e.Auth == EndpointAuth.SecretKey ? Expectation.ClientErrorWithMessage : null, (e, c) =>
            Request(e, c, authorization: "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:" + c.Key)))),
    ];

    private static byte[] InvalidUtf8InLastString(string body)
    {
        var end = body.LastIndexOf('"');
        return [.. Encoding.UTF8.GetBytes(body[..end]), 0xC3, 0x28, 0xFF, .. Encoding.UTF8.GetBytes(body[end..])];
    }

    private static BadInputAttack Paging(string name, Func<PublicEndpoint, string> query) =>
        new(name, e => e.PagedBy is not null ? Expectation.ClientErrorWithMessage : null, (e, c) => Request(e, c, query: query(e)));

    private static BadInputAttack Body(string name, Func<PublicEndpoint, string> body) =>
        new(name, e => e.TakesBody ? Expectation.ClientErrorWithMessage : null, (e, c) => Request(e, c, new StringContent(body(e), Encoding.UTF8, "application/json")));

    /// <summary>The endpoint's request with the caller's key (unless <paramref name="authorization"/> says otherwise).</summary>
    public static HttpRequestMessage Request(PublicEndpoint endpoint, BadInputContext context, HttpContent? content = null, string? authorization = null,
        (string Name, string Value)[]? headers = null, string? query = null, string? replaceQuery = null)
    {
        var path = endpoint.Path.Replace("{keyId}", context.KeyId, StringComparison.Ordinal).Replace("{revealToken}", context.UsedRevealToken, StringComparison.Ordinal);
        if (replaceQuery is not null)
        {
            path = path.Split('?')[0] + "?" + replaceQuery;
        }
        else if (query is not null)
        {
            path += (path.Contains('?', StringComparison.Ordinal) ? "&" : "?") + query;
        }

        var request = new HttpRequestMessage(new HttpMethod(endpoint.Method), path) { Content = content };
        var auth = authorization ?? (endpoint.Auth == EndpointAuth.SecretKey ? "Bearer " + context.Key : string.Empty);
        if (auth.Length > 0)
        {
            request.Headers.TryAddWithoutValidation("Authorization", auth);
        }

        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }
}
