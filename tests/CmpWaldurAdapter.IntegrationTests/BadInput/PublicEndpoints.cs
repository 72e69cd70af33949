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
/// <see cref="ServedStatus"/> and <see cref="ServedCode"/>: what the well-formed request gets when it cannot be served
/// here (a source on the internet, a logo nobody uploaded), from the step after its input was read and checked; else a
/// 2xx. <see cref="AgentAnswer"/>: what the bed's agent answers a served request with, where an echo of its input
/// would not do (an image's or a sound's bytes). <see cref="Mapped"/>: the
/// route as the adapter maps it, where the method and path (without query) do not say it.
/// </summary>
public sealed record PublicEndpoint(string Method, string Path, EndpointAuth Auth, string? ValidBody = null, bool IgnoresUnknownFields = false, string? PagedBy = null,
    int? ServedStatus = null, string? ServedCode = null, string? AgentAnswer = null, string? Mapped = null)
{
    public bool TakesBody => ValidBody is not null;

    public string MappedAs => Mapped ?? $"{Method} {Path.Split('?')[0]}";

    public bool NamesOwnedId => Path.Contains("{keyId}", StringComparison.Ordinal);

    public override string ToString() => $"{Method} {Path}";
}

/// <summary>Every public endpoint the adapter maps. A new endpoint joins the bad-input suite with one line here.</summary>
public static class PublicEndpoints
{
    public static readonly IReadOnlyList<PublicEndpoint> All =
    [
        new("GET", "/healthz", EndpointAuth.None, Mapped: "* /healthz"),
        new("GET", "/readyz", EndpointAuth.None, Mapped: "* /readyz"),
        new("GET", "/status", EndpointAuth.None, Mapped: "* /status"),
        new("GET", "/metrics", EndpointAuth.None, Mapped: "* /metrics"),
        new("GET", "/openapi/v1.json", EndpointAuth.None, Mapped: "GET /openapi/{documentName}.json"),
        new("GET", "/keys/reveal/{revealToken}", EndpointAuth.None, Mapped: "GET /keys/reveal/{token}"),
        new("POST", "/keys/reveal/{revealToken}", EndpointAuth.None, Mapped: "POST /keys/reveal/{token}"),
        new("GET", "/v1/keys", EndpointAuth.SecretKey, Mapped: "GET /v1/keys/"),
        new("POST", "/v1/keys", EndpointAuth.SecretKey, """{"name": "ci server", "kind": "secret"}""", Mapped: "POST /v1/keys/"),
        new("POST", "/v1/keys/{keyId}/regenerate", EndpointAuth.SecretKey, Mapped: "POST /v1/keys/{id:guid}/regenerate"),
        new("DELETE", "/v1/keys/{keyId}", EndpointAuth.SecretKey, Mapped: "DELETE /v1/keys/{id:guid}"),
        new("GET", "/v1/usage?period=2026-01", EndpointAuth.SecretKey),
        new("GET", "/v1/models", EndpointAuth.SecretKey),
        new("GET", "/v1/models/customer-support-agent", EndpointAuth.SecretKey, Mapped: "GET /v1/models/{model}"),
        new("POST", "/v1/chat/completions", EndpointAuth.SecretKey, """{"model": "customer-support-agent", "messages": [{"role": "user", "content": "hello"}]}""", IgnoresUnknownFields: true),
        new("GET", "/v1/knowledge/documents", EndpointAuth.SecretKey),
        new("GET", "/v1/knowledge/connectors", EndpointAuth.SecretKey),
        // A private address: the source guard refuses it after the body was read, so no request leaves loopback.
        new("POST", "/v1/knowledge/urls", EndpointAuth.SecretKey, """{"url": "https://10.0.0.1/faq"}""", ServedStatus: 400, ServedCode: "source_rejected"),
        new("POST", "/v1/knowledge/connectors/confluence", EndpointAuth.SecretKey,
            """{"site_url": "https://10.0.0.1", "email": "ops@example.com", "api_token": "confluence-token", "space_key": "SUP"}""", ServedStatus: 400, ServedCode: "source_rejected"),
        new("PUT", "/v1/handoff/webhook", EndpointAuth.SecretKey, """{"url": "https://93.184.215.14/hooks/escalations"}"""),
        new("POST", "/v1/handoff/webhook/secret", EndpointAuth.SecretKey),
        new("GET", "/v1/handoff/webhook", EndpointAuth.SecretKey),
        new("GET", "/v1/handoff/escalations", EndpointAuth.SecretKey, PagedBy: CmpWaldurAdapter.Capabilities.Handoff.HandoffService.EscalationIdPrefix),
        new("POST", "/v1/runs", EndpointAuth.SecretKey, """{"input": {"ticket": "My parcel is late"}}"""),
        new("GET", "/v1/runs", EndpointAuth.SecretKey, PagedBy: CmpWaldurAdapter.Capabilities.Automations.AutomationService.RunIdPrefix),
        new("POST", "/v1/images/generations", EndpointAuth.SecretKey, """{"prompt": "a red bicycle"}""", IgnoresUnknownFields: true,
            AgentAnswer: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg=="),
        new("POST", "/v1/audio/speech", EndpointAuth.SecretKey, """{"input": "Your parcel arrives tomorrow.", "voice": "alloy"}""", IgnoresUnknownFields: true,
            AgentAnswer: "data:audio/mpeg;base64,SUQzBAAAAAAAI1RTU0UAAAAP"),
        // This bed provisions no demo agent, so a well-formed message fails at its run, after it was read and checked.
        new("POST", "/try/customer-support-agent/messages", EndpointAuth.None, """{"message": "hello"}""", ServedStatus: 503, ServedCode: "agent_unavailable",
            Mapped: "POST /try/{offering}/messages"),
        new("GET", "/try/customer-support-agent", EndpointAuth.None, Mapped: "* /try/{offering}"),
        new("GET", "/marketplace", EndpointAuth.None, Mapped: "* /marketplace"),
        new("GET", "/web/logo/0b9f6c1e-5d4a-4c3b-9a2e-7f1d0c8b6a53", EndpointAuth.None, ServedStatus: 404, Mapped: "GET /web/logo/{subscriptionId:guid}"),
    ];

    /// <summary>
    /// Mapped endpoints whose bad input is tested elsewhere, because their requests need what this suite's cannot carry
    /// (a multipart file, a console session, a widget's origin and visitor token, an existing connector or document,
    /// Notion's fixed API address), with where.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> CoveredElsewhere = new Dictionary<string, string>
    {
        ["* /console"] = "ConsoleFormBadInputTests, SpendAlertConsoleTests (forms: bad values, missing anti-forgery token)",
        ["GET /console/open"] = "ConsoleLinkTests (forged, expired and replaced links)",
        ["POST /console/open"] = "BuyerWebTests, CookieTossingTests (the switch question's form without its token, with another browser's)",
        ["POST /console/signout"] = "ConsoleSignOutTests (no form, another session's token, a JSON body)",
        ["POST /console/api/chat"] = "BuyerWebTests, ConsoleFundingTests",
        ["POST /widget/v1/session"] = "BuyerWebTests, BuyerWebOnPostgresTests (origins, keys, bodies)",
        ["POST /widget/v1/chat"] = "BuyerWebTests (tokens of other origins, forged and expired tokens)",
        ["OPTIONS /widget/v1/{action}"] = "BuyerWebTests (preflight)",
        ["POST /v1/knowledge/documents"] = "KnowledgeApiTests (multipart: oversized 413, unsupported type 415, malformed 400)",
        ["DELETE /v1/knowledge/documents/{id}"] = "KnowledgeApiTests, KnowledgeLifecycleTests (other tenants' and unknown ids)",
        ["POST /v1/knowledge/connectors/notion"] = "KnowledgeConnectorTests (Notion's API address is configuration, not input)",
        ["PATCH /v1/knowledge/connectors/{id}"] = "KnowledgeConnectorTests",
        ["DELETE /v1/knowledge/connectors/{id}"] = "KnowledgeConnectorTests",
        ["POST /v1/knowledge/connectors/{id}/sync"] = "KnowledgeConnectorTests",
        ["POST /v1/audio/transcriptions"] = "MediaTests (multipart: oversized 413, no file, unreadable audio)",
    };
}
