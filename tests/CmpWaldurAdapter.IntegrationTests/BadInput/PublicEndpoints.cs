namespace CmpWaldurAdapter.IntegrationTests.BadInput;

public enum EndpointAuth
{
    /// <summary>Open to anyone (health, metrics, OpenAPI, the one-time reveal link).</summary>
    None,

    /// <summary>Needs a subscription's secret key: <c>Authorization: Bearer sk_live_…</c>.</summary>
    SecretKey,
}

/// <summary>
/// One public endpoint under the bad-input suite. <see cref="Path"/> may name <c>{keyId}</c> (an API key id
/// of the caller's subscription; the suite also tries another tenant's) and <c>{revealToken}</c> (an already
/// used one-time link token). <see cref="ValidBody"/> is a body the endpoint accepts; when set, every
/// body attack (malformed, truncated, oversized, wrong type, invalid UTF-8 …) is tried on it.
/// <see cref="IgnoresUnknownFields"/> marks OpenAI-compatible bodies, where unknown fields are ignored by design.
/// <see cref="PagedBy"/> marks a list paged with <c>limit</c> and <c>after</c>: the prefix of its items' ids.
/// </summary>
public sealed record PublicEndpoint(string Method, string Path, EndpointAuth Auth, string? ValidBody = null, bool IgnoresUnknownFields = false, string? PagedBy = null)
{
    public bool TakesBody => ValidBody is not null;

    public bool NamesOwnedId => Path.Contains("{keyId}", StringComparison.Ordinal);

    public override string ToString() => $"{Method} {Path}";
}

/// <summary>Every public endpoint the adapter maps. A new endpoint joins the bad-input suite with one line here.</summary>
public static class PublicEndpoints
{
    public static readonly IReadOnlyList<PublicEndpoint> All =
    [
        new("GET", "/healthz", EndpointAuth.None),
        new("GET", "/readyz", EndpointAuth.None),
        new("GET", "/status", EndpointAuth.None),
        new("GET", "/metrics", EndpointAuth.None),
        new("GET", "/openapi/v1.json", EndpointAuth.None),
        new("GET", "/keys/reveal/{revealToken}", EndpointAuth.None),
        new("GET", "/v1/keys", EndpointAuth.SecretKey),
        new("POST", "/v1/keys", EndpointAuth.SecretKey, """{"name": "ci server", "kind": "secret"}"""),
        new("POST", "/v1/keys/{keyId}/regenerate", EndpointAuth.SecretKey),
        new("DELETE", "/v1/keys/{keyId}", EndpointAuth.SecretKey),
        new("GET", "/v1/usage?period=2026-01", EndpointAuth.SecretKey),
        new("GET", "/v1/models", EndpointAuth.SecretKey),
        new("POST", "/v1/chat/completions", EndpointAuth.SecretKey, """{"model": "customer-support-agent", "messages": [{"role": "user", "content": "hello"}]}""", IgnoresUnknownFields: true),
        new("GET", "/v1/knowledge/documents", EndpointAuth.SecretKey),
        new("GET", "/v1/knowledge/connectors", EndpointAuth.SecretKey),
        new("PUT", "/v1/handoff/webhook", EndpointAuth.SecretKey, """{"url": "https://93.184.215.14/hooks/escalations"}"""),
        new("GET", "/v1/handoff/escalations", EndpointAuth.SecretKey, PagedBy: CmpWaldurAdapter.Capabilities.Handoff.HandoffService.EscalationIdPrefix),
    ];
}
