namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>
/// One HTTP request as seen by a fake upstream, independent of WireMock so the checker can also
/// be fed hand-made requests.
/// </summary>
/// <param name="Method">HTTP method, any case.</param>
/// <param name="Url">Path with query string (<c>/api/x/?a=1</c>), percent-encoded as sent; an absolute URL is reduced to that.</param>
public sealed record HttpRequestRecord(string Method, string Url)
{
    private static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> NoHeaders =
        new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase);

    /// <summary>Request headers; looked up case-insensitively whatever the dictionary's comparer.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Headers { get; init; } = NoHeaders;

    /// <summary>Content-Type; when null, the Content-Type header (if any) is used.</summary>
    public string? ContentType { get; init; }

    /// <summary>Body text; null or empty when there is none.</summary>
    public string? Body { get; init; }

    /// <summary>The path part of <see cref="Url"/>, still percent-encoded.</summary>
    public string Path => SplitUrl().Path;

    /// <summary>The query part of <see cref="Url"/> without '?', still encoded.</summary>
    public string Query => SplitUrl().Query;

    /// <summary>Content type in effect: <see cref="ContentType"/> or the Content-Type header.</summary>
    public string? EffectiveContentType => ContentType ?? GetHeader("Content-Type");

    /// <summary>Builds a record with single-valued headers, e.g. <c>("Authorization", "Token x")</c>.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> HeadersOf(params (string Name, string Value)[] headers)
    {
        var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in headers)
        {
            result[name] = result.TryGetValue(name, out var existing) ? [.. existing, value] : [value];
        }

        return result;
    }

    /// <summary>First value of a header (case-insensitive), or null.</summary>
    public string? GetHeader(string name)
    {
        foreach (var (key, values) in Headers)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase) && values.Count > 0)
            {
                return values[0];
            }
        }

        return null;
    }

    /// <summary><c>METHOD /path?query</c>, without scheme and host.</summary>
    public override string ToString() => $"{Method.ToUpperInvariant()} {PathAndQuery}";

    /// <summary>Path and query as sent, without scheme, host and fragment.</summary>
    public string PathAndQuery => Query.Length > 0 ? $"{Path}?{Query}" : Path;

    private (string Path, string Query) SplitUrl()
    {
        var url = Url;
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd > 0 && !url.StartsWith('/'))
        {
            var pathStart = url.IndexOfAny(['/', '?'], schemeEnd + 3);
            url = pathStart < 0 ? "/" : url[pathStart..];
        }

        var fragment = url.IndexOf('#', StringComparison.Ordinal);
        if (fragment >= 0)
        {
            url = url[..fragment];
        }

        var question = url.IndexOf('?', StringComparison.Ordinal);
        var path = question < 0 ? url : url[..question];
        var query = question < 0 ? "" : url[(question + 1)..];
        return (path.Length == 0 ? "/" : path, query);
    }
}
