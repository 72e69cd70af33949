using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Contracts;
using Microsoft.AspNetCore.Http;

namespace CmpWaldurAdapter.IntegrationTests.BadInput;

/// <summary>
/// What <c>openapi/cmp-adapter.json</c> promises for an endpoint: SDKs are generated from it, so a status the endpoint
/// answers must be declared there, and an error must carry OpenAI's four fields.
/// </summary>
public static partial class DocumentedResponses
{
    /// <summary>
    /// Kestrel answers a request line or headers too long for it (414, 431) before routing, with no body: no endpoint can
    /// declare or shape them.
    /// </summary>
    private static readonly int[] AnsweredBeforeRouting = [StatusCodes.Status414UriTooLong, StatusCodes.Status431RequestHeaderFieldsTooLarge];

    private static readonly Lazy<JsonNode> Document = new(() => JsonNode.Parse(File.ReadAllText(UpstreamSpecs.PathOf("openapi/cmp-adapter.json")))!);

    /// <summary>The operation of the endpoint's route in the document, or null when the route is not described (pages, health, the reveal link).</summary>
    public static JsonObject? OperationOf(PublicEndpoint endpoint)
    {
        var parts = endpoint.MappedAs.Split(' ', 2);
        // The document names a route without its constraints and without a trailing slash: /v1/keys/{id:guid}/ is /v1/keys/{id}.
        var path = RouteConstraint().Replace(parts[1], "}").TrimEnd('/');
        return Document.Value["paths"]?[path]?[parts[0].ToLowerInvariant()]?.AsObject();
    }

    /// <summary>The response headers the document declares for the endpoint's <paramref name="status"/>.</summary>
    public static IReadOnlyList<string> HeadersOf(PublicEndpoint endpoint, int status) =>
        OperationOf(endpoint)?["responses"]?[status.ToString(CultureInfo.InvariantCulture)]?["headers"]?.AsObject().Select(h => h.Key).ToList() ?? [];

    /// <summary>Fails unless the documented endpoint declares <paramref name="status"/> and an error body has OpenAI's shape.</summary>
    public static void AssertDeclared(PublicEndpoint endpoint, int status, string body, string during)
    {
        if (OperationOf(endpoint) is not { } operation || AnsweredBeforeRouting.Contains(status))
        {
            return;
        }

        var declared = operation["responses"]!.AsObject().Select(r => r.Key).ToList();
        Assert.True(declared.Contains(status.ToString(CultureInfo.InvariantCulture)),
            $"{endpoint} {during} answered {status}, which openapi/cmp-adapter.json does not declare for it (declared: {string.Join(", ", declared)}). Add .Produces to the endpoint and run scripts/generate-openapi.sh.");
        if (status >= 400)
        {
            var error = JsonNode.Parse(body)?["error"] as JsonObject;
            var missing = new[] { "message", "type", "code", "param" }.Where(field => error is null || !error.ContainsKey(field)).ToList();
            Assert.True(missing.Count == 0, $"{endpoint} {during}: the {status} error lacks {string.Join(", ", missing)}, which the ApiError schema requires: {body}");
        }
    }

    [GeneratedRegex(@":[^}]+\}")]
    private static partial Regex RouteConstraint();
}
