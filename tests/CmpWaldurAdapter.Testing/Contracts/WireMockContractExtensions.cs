using System.Text;
using WireMock;
using WireMock.Server;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>Checks the traffic a WireMock fake received against an upstream OpenAPI contract.</summary>
public static class WireMockContractExtensions
{
    /// <summary>
    /// Throws <see cref="ContractViolationException"/> (an xunit assertion failure) naming every
    /// logged request that breaks <paramref name="contract"/>, with each violation.
    /// </summary>
    /// <param name="server">The fake.</param>
    /// <param name="contract">The spec the fake stands in for.</param>
    /// <param name="ignoredPathPrefixes">
    /// Paths the fake serves that are not part of this spec (e.g. <c>/health</c>); a prefix
    /// matches whole segments, so <c>/health</c> covers <c>/health/live</c> but not <c>/healthz</c>.
    /// </param>
    /// <returns>How many requests were checked (so a test can also assert traffic happened).</returns>
    public static int AssertRequestsConform(this WireMockServer server, OpenApiContract contract, params string[] ignoredPathPrefixes)
    {
        var requests = RecordedRequests(server, contract, ignoredPathPrefixes);
        var failures = Check(requests, contract);
        if (failures.Count > 0)
        {
            throw new ContractViolationException(contract.Name, requests.Count, failures);
        }

        return requests.Count;
    }

    /// <summary>The non-throwing variant: every logged request that breaks the contract.</summary>
    public static IReadOnlyList<NonConformingRequest> FindContractViolations(this WireMockServer server, OpenApiContract contract, params string[] ignoredPathPrefixes) =>
        Check(RecordedRequests(server, contract, ignoredPathPrefixes), contract);

    /// <summary>Converts a WireMock request to the checker's neutral form, keeping the path percent-encoded.</summary>
    public static HttpRequestRecord ToHttpRequestRecord(this IRequestMessage request)
    {
        // RequestMessage.Path is URL-decoded (so '%2F' would split a segment); the URL keeps encoding.
        var headers = request.Headers?.ToDictionary(
                h => h.Key,
                h => (IReadOnlyList<string>)h.Value.ToArray(),
                StringComparer.OrdinalIgnoreCase)
            ?? new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase);
        var body = request.BodyData?.BodyAsString
            ?? (request.BodyData?.BodyAsBytes is { Length: > 0 } bytes ? Encoding.UTF8.GetString(bytes) : null);
        return new HttpRequestRecord(request.Method, new HttpRequestRecord(request.Method, request.Url).PathAndQuery)
        {
            Headers = headers,
            Body = body,
        };
    }

    private static List<HttpRequestRecord> RecordedRequests(WireMockServer server, OpenApiContract contract, string[] ignoredPathPrefixes) =>
        server.LogEntries
            .OrderBy(entry => entry.RequestMessage.DateTime)
            .Select(entry => entry.RequestMessage.ToHttpRequestRecord())
            .Where(request => !ignoredPathPrefixes.Any(prefix => IsUnder(request.Path, prefix)))
            .ToList();

    private static List<NonConformingRequest> Check(List<HttpRequestRecord> requests, OpenApiContract contract) =>
        requests
            .Select(request => new NonConformingRequest(request, contract.Validate(request)))
            .Where(result => result.Violations.Count > 0)
            .ToList();

    private static bool IsUnder(string path, string prefix)
    {
        if (prefix.EndsWith('/'))
        {
            return path.StartsWith(prefix, StringComparison.Ordinal) || path == prefix.TrimEnd('/');
        }

        return path == prefix || path.StartsWith(prefix + "/", StringComparison.Ordinal);
    }
}
