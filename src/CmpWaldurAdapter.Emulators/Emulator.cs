using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Emulators;

/// <summary>A request as an emulator route sees it (method, path, query, headers and the raw body).</summary>
public sealed class EmulatorMessage
{
    public required string Method { get; init; }

    public required string Path { get; init; }

    public required string PathAndQuery { get; init; }

    public required IReadOnlyDictionary<string, string[]> Query { get; init; }

    public required IReadOnlyDictionary<string, string[]> Headers { get; init; }

    public string? ContentType { get; init; }

    public byte[]? BodyAsBytes { get; init; }

    public string? Body => BodyAsBytes is { Length: > 0 } bytes ? Encoding.UTF8.GetString(bytes) : null;
}

/// <summary>A request with the values its route template captured.</summary>
public sealed class RouteRequest(EmulatorMessage message, IReadOnlyDictionary<string, string> pathValues)
{
    public EmulatorMessage Message { get; } = message;

    public string Method => Message.Method;

    public string Path => Message.Path;

    public IReadOnlyDictionary<string, string> PathValues { get; } = pathValues;

    public Guid Id(string name = "uuid") => Guid.Parse(PathValues[name]);

    public string? Query(string name) => Message.Query.TryGetValue(name, out var values) ? values.FirstOrDefault() : null;

    public IReadOnlyList<string> QueryAll(string name) => Message.Query.TryGetValue(name, out var values) ? values : [];

    public string? Header(string name) => Message.Headers.TryGetValue(name, out var values) ? values.FirstOrDefault() : null;

    public JsonNode? Json => string.IsNullOrEmpty(Message.Body) ? null : JsonNode.Parse(Message.Body);

    public JsonObject JsonObject => Json as JsonObject ?? [];
}

/// <summary>An emulator's answer; <see cref="Stream"/> writes a streamed body instead of <see cref="Body"/>.</summary>
public sealed record EmulatorResponse(int Status, string? Body = null, string ContentType = "application/json", IReadOnlyDictionary<string, string>? Headers = null)
{
    public Func<Stream, CancellationToken, Task>? Stream { get; init; }

    public static EmulatorResponse Json(object? body, int status = 200) =>
        new(status, body is JsonNode node ? node.ToJsonString() : JsonSerializer.Serialize(body));

    public static EmulatorResponse Empty(int status = 204) => new(status, null);

    public static EmulatorResponse Text(string text, int status = 200) => new(status, text, "text/plain");

    public static EmulatorResponse Error(int status, string detail) => Json(new JsonObject { ["detail"] = detail }, status);

    /// <summary>The whole body as text, running <see cref="Stream"/> to its end (for hosts that cannot stream).</summary>
    public async Task<string?> BodyTextAsync(CancellationToken cancellationToken = default)
    {
        if (Stream is null)
        {
            return Body;
        }

        using var buffer = new MemoryStream();
        await Stream(buffer, cancellationToken);
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}

/// <summary>One exchange an emulator served, kept so tests can check requests and responses against the specs.</summary>
public sealed record EmulatorExchange(EmulatorMessage Request, int Status, string? ResponseContentType, string? ResponseBody, DateTimeOffset At);

/// <summary>
/// The base of every emulator: its state and routes written as path templates, answered by
/// <see cref="HandleAsync"/> whatever carries the request. <see cref="StartAsync"/> serves them on Kestrel
/// (sandbox, end-to-end tests, benchmarks); the test kit serves the same routes through WireMock. State is
/// guarded by <see cref="Sync"/>.
/// </summary>
public abstract class Emulator : IAsyncDisposable
{
    private readonly List<(string Method, Regex Pattern, Func<RouteRequest, Task<EmulatorResponse>> Handler)> _routes = [];
    private readonly ConcurrentDictionary<(string Method, string Path), int> _served = new();
    private EmulatorServer? _server;

    /// <summary>What a multipart body served on Kestrel keeps of each file part: enough text for any test's chunks and retrieval.</summary>
    public const int KeptFileBytes = 1024 * 1024;

    /// <summary>The header a file part shortened on Kestrel gets, with the length that was sent.</summary>
    public const string SentLengthHeader = "X-Emulator-Sent-Length";

    /// <summary>Guards the emulator's state: routes run concurrently.</summary>
    protected object Sync { get; } = new();

    /// <summary>Where the emulator is served (answers that link to themselves use it).</summary>
    public Uri Url { get; protected set; } = new("http://127.0.0.1/");

    /// <summary>The exchanges served on Kestrel (bounded; empty when another host serves the routes).</summary>
    public IReadOnlyList<EmulatorExchange> Exchanges => _server?.Exchanges ?? [];

    /// <summary>Starts serving on 127.0.0.1 over Kestrel (port 0 picks a free one).</summary>
    public async Task StartAsync(int port = 0, CancellationToken cancellationToken = default)
    {
        _server = await EmulatorServer.StartAsync(this, port, cancellationToken);
        Url = _server.Url;
    }

    /// <summary>How many requests this method and path (a regular expression over the whole path) were answered, by any host.</summary>
    public int RequestCount(string method, string pathPattern)
    {
        var pattern = new Regex("^" + pathPattern + "$");
        return _served.Where(s => s.Key.Method.Equals(method, StringComparison.OrdinalIgnoreCase) && pattern.IsMatch(s.Key.Path)).Sum(s => s.Value);
    }

    /// <summary>Answers one request: the first route whose method and template match, else <see cref="NotFound"/>.</summary>
    public async Task<EmulatorResponse> HandleAsync(EmulatorMessage message)
    {
        _served.AddOrUpdate((message.Method.ToUpperInvariant(), message.Path), 1, (_, count) => count + 1);
        foreach (var (method, pattern, handler) in _routes)
        {
            if (!message.Method.Equals(method, StringComparison.OrdinalIgnoreCase) || pattern.Match(message.Path) is not { Success: true } match)
            {
                continue;
            }

            var values = pattern.GetGroupNames().Where(n => !int.TryParse(n, out _)).ToDictionary(n => n, n => Uri.UnescapeDataString(match.Groups[n].Value));
            try
            {
                return await handler(new RouteRequest(message, values));
            }
            catch (Exception exception) when (exception is JsonException or FormatException or KeyNotFoundException or InvalidOperationException or NullReferenceException)
            {
                return EmulatorResponse.Error(400, exception.Message);
            }
        }

        return NotFound(message);
    }

    protected void Route(string method, string template, Func<RouteRequest, EmulatorResponse> handler) =>
        Route(method, template, request => Task.FromResult(handler(request)));

    protected void Route(string method, string template, Func<RouteRequest, Task<EmulatorResponse>> handler)
    {
        var pattern = "^" + Regex.Replace(Regex.Escape(template).Replace(@"\{", "{"), "{([a-z_]+)}", "(?<$1>[^/]+)") + "$";
        _routes.Add((method, new Regex(pattern), handler));
    }

    protected virtual EmulatorResponse NotFound(EmulatorMessage request) => EmulatorResponse.Error(404, $"No route for {request.Method} {request.Path}");

    /// <summary>Whether some route answers this method and path (for emulators that redirect near misses).</summary>
    protected bool HasRoute(string method, string path) =>
        _routes.Any(r => r.Method.Equals(method, StringComparison.OrdinalIgnoreCase) && r.Pattern.IsMatch(path));

    /// <summary>Every secret the emulator mints or stores (passwords, tokens, keys) passes here, so a test host can watch logs for it.</summary>
    protected virtual string Secret(string value, string description) => value;

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }
}
