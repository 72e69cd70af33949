using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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
}

/// <summary>One exchange an emulator served, kept so tests can check requests and responses against the specs.</summary>
public sealed record EmulatorExchange(EmulatorMessage Request, int Status, string? ResponseContentType, string? ResponseBody, DateTimeOffset At);

/// <summary>
/// The base of every emulator: a Kestrel server on a loopback port with one catch-all endpoint that dispatches to
/// routes written as path templates. State is guarded by <see cref="Sync"/>; every exchange is kept (bounded).
/// </summary>
public abstract class Emulator : IAsyncDisposable
{
    private const int MaxExchanges = 10_000;
    private readonly List<(string Method, Regex Pattern, Func<RouteRequest, Task<EmulatorResponse>> Handler)> _routes = [];
    private readonly LinkedList<EmulatorExchange> _exchanges = new();
    private WebApplication? _app;

    /// <summary>Guards the emulator's state: routes run concurrently.</summary>
    protected object Sync { get; } = new();

    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    public IReadOnlyList<EmulatorExchange> Exchanges
    {
        get
        {
            lock (_exchanges)
            {
                return [.. _exchanges];
            }
        }
    }

    /// <summary>Starts listening on 127.0.0.1 (port 0 picks a free one).</summary>
    public async Task StartAsync(int port = 0, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        _app = builder.Build();
        _app.Run(DispatchAsync);
        await _app.StartAsync(cancellationToken);
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Url = new Uri(address.TrimEnd('/') + "/");
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

    private async Task DispatchAsync(HttpContext context)
    {
        var message = await ReadAsync(context.Request);
        var response = await AnswerAsync(message);
        context.Response.StatusCode = response.Status;
        context.Response.ContentType = response.ContentType;
        foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>())
        {
            context.Response.Headers[name] = value;
        }

        if (response.Stream is { } stream)
        {
            Record(new EmulatorExchange(message, response.Status, response.ContentType, null, DateTimeOffset.UtcNow));
            await context.Response.StartAsync(context.RequestAborted);
            await stream(context.Response.Body, context.RequestAborted);
            return;
        }

        Record(new EmulatorExchange(message, response.Status, response.Body is null ? null : response.ContentType, response.Body, DateTimeOffset.UtcNow));
        if (response.Body is not null)
        {
            await context.Response.WriteAsync(response.Body, context.RequestAborted);
        }
    }

    private async Task<EmulatorResponse> AnswerAsync(EmulatorMessage message)
    {
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

    private static async Task<EmulatorMessage> ReadAsync(HttpRequest request)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer);
        return new EmulatorMessage
        {
            Method = request.Method,
            Path = request.Path.Value ?? "/",
            PathAndQuery = (request.Path.Value ?? "/") + request.QueryString.Value,
            Query = request.Query.ToDictionary(q => q.Key, q => q.Value.Select(v => v ?? string.Empty).ToArray()),
            Headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.Select(v => v ?? string.Empty).ToArray(), StringComparer.OrdinalIgnoreCase),
            ContentType = request.ContentType,
            BodyAsBytes = buffer.ToArray(),
        };
    }

    private void Record(EmulatorExchange exchange)
    {
        lock (_exchanges)
        {
            _exchanges.AddLast(exchange);
            if (_exchanges.Count > MaxExchanges)
            {
                _exchanges.RemoveFirst();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }
}
