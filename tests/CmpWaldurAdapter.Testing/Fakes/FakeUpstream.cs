using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using WireMock;
using WireMock.Matchers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;
using WireMock.Types;
using WireMock.Util;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>A request as a fake route sees it.</summary>
public sealed class RouteRequest(IRequestMessage message, IReadOnlyDictionary<string, string> pathValues)
{
    public IRequestMessage Message { get; } = message;

    public string Method => Message.Method;

    public string Path => Message.Path;

    public IReadOnlyDictionary<string, string> PathValues { get; } = pathValues;

    public Guid Id(string name = "uuid") => Guid.Parse(PathValues[name]);

    public string? Query(string name) => Message.Query is { } q && q.TryGetValue(name, out var values) ? values.FirstOrDefault() : null;

    public IReadOnlyList<string> QueryAll(string name) => Message.Query is { } q && q.TryGetValue(name, out var values) ? values.ToList() : [];

    public string? Header(string name) => Message.Headers is { } h && h.TryGetValue(name, out var values) ? values.FirstOrDefault() : null;

    public JsonNode? Json => string.IsNullOrEmpty(Message.Body) ? null : JsonNode.Parse(Message.Body);

    public JsonObject JsonObject => Json as JsonObject ?? [];
}

/// <summary>A fake's answer.</summary>
public sealed record FakeResponse(int Status, string? Body = null, string ContentType = "application/json", IReadOnlyDictionary<string, string>? Headers = null, TimeSpan? Delay = null)
{
    public static FakeResponse Json(object? body, int status = 200) =>
        new(status, body is JsonNode node ? node.ToJsonString() : JsonSerializer.Serialize(body));

    public static FakeResponse Empty(int status = 204) => new(status, null);

    public static FakeResponse Text(string text, int status = 200) => new(status, text, "text/plain");

    public static FakeResponse Error(int status, string detail) => Json(new JsonObject { ["detail"] = detail }, status);
}

/// <summary>
/// The base of every stateful upstream fake: one WireMock catch-all mapping that dispatches to routes
/// written as path templates, with fault injection in front of them. WireMock keeps every request,
/// so tests check them against the pinned upstream spec.
/// </summary>
public abstract class FakeUpstream : IDisposable
{
    private readonly List<(string Method, Regex Pattern, string Template, Func<RouteRequest, Task<FakeResponse>> Handler)> _routes = [];
    private readonly ConcurrentQueue<Fault> _faults = new();
    private readonly object _faultLock = new();

    protected FakeUpstream()
    {
        Server = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"], StartAdminInterface = false });
        Server.Given(Request.Create().UsingAnyMethod().WithPath(new RegexMatcher(".*")))
            .RespondWith(Response.Create().WithCallback(DispatchAsync));
    }

    public WireMockServer Server { get; }

    public Uri Url => new(Server.Url!.TrimEnd('/') + "/");

    /// <summary>Guards the fake's state: routes run concurrently.</summary>
    protected object Sync { get; } = new();

    public IEnumerable<IRequestMessage> Requests => Server.LogEntries.Select(e => e.RequestMessage);

    public int Count(string method, string pathPattern) =>
        Requests.Count(r => r.Method.Equals(method, StringComparison.OrdinalIgnoreCase) && Regex.IsMatch(r.Path, "^" + pathPattern + "$"));

    /// <summary>The next <paramref name="times"/> matching requests fail with <paramref name="status"/> (0 = a garbled answer: an OK status line, then garbage).</summary>
    public void Fail(string method, string pathPattern, int status, int times = 1, TimeSpan? delay = null, string? body = null)
    {
        lock (_faultLock)
        {
            _faults.Enqueue(new Fault(method, new Regex("^" + pathPattern + "$"), status, times, delay, body));
        }
    }

    /// <summary>Every matching request fails until <see cref="Heal"/>.</summary>
    public void Break(string method, string pathPattern, int status, TimeSpan? delay = null) => Fail(method, pathPattern, status, int.MaxValue, delay);

    /// <summary>Called after a route answered (e.g. to simulate the adapter dying right after an upstream call).</summary>
    public Action<RouteRequest, FakeResponse>? Observe { get; set; }

    public void Heal()
    {
        lock (_faultLock)
        {
            _faults.Clear();
        }
    }

    protected void Route(string method, string template, Func<RouteRequest, FakeResponse> handler) =>
        Route(method, template, request => Task.FromResult(handler(request)));

    protected void Route(string method, string template, Func<RouteRequest, Task<FakeResponse>> handler)
    {
        var pattern = "^" + Regex.Replace(Regex.Escape(template).Replace(@"\{", "{"), "{([a-z_]+)}", "(?<$1>[^/]+)") + "$";
        _routes.Add((method, new Regex(pattern), template, handler));
    }

    private async Task<IResponseMessage> DispatchAsync(IRequestMessage request)
    {
        if (TakeFault(request) is { } fault)
        {
            if (fault.Delay is { } wait)
            {
                await Task.Delay(wait);
            }

            return fault.Status == 0
                ? new ResponseMessage { FaultType = FaultType.MALFORMED_RESPONSE_CHUNK, StatusCode = 200 }
                : ToMessage(new FakeResponse(fault.Status, fault.Body ?? "{\"detail\":\"injected failure\"}"));
        }

        foreach (var (method, pattern, _, handler) in _routes)
        {
            if (!request.Method.Equals(method, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var match = pattern.Match(request.Path);
            if (!match.Success)
            {
                continue;
            }

            var values = pattern.GetGroupNames().Where(n => !int.TryParse(n, out _)).ToDictionary(n => n, n => Uri.UnescapeDataString(match.Groups[n].Value));
            FakeResponse response;
            try
            {
                response = await handler(new RouteRequest(request, values));
            }
            catch (Exception exception) when (exception is JsonException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
                response = FakeResponse.Error(400, exception.Message);
            }

            if (response.Delay is { } delay)
            {
                await Task.Delay(delay);
            }

            Observe?.Invoke(new RouteRequest(request, values), response);
            return ToMessage(response);
        }

        return ToMessage(NotFound(request));
    }

    protected virtual FakeResponse NotFound(IRequestMessage request) => FakeResponse.Error(404, $"No route for {request.Method} {request.Path}");

    /// <summary>Whether some route answers this method and path (for fakes that redirect near misses).</summary>
    protected bool HasRoute(string method, string path) =>
        _routes.Any(r => r.Method.Equals(method, StringComparison.OrdinalIgnoreCase) && r.Pattern.IsMatch(path));

    private Fault? TakeFault(IRequestMessage request)
    {
        lock (_faultLock)
        {
            foreach (var fault in _faults)
            {
                if (fault.Remaining > 0 && fault.Method.Equals(request.Method, StringComparison.OrdinalIgnoreCase) && fault.Pattern.IsMatch(request.Path))
                {
                    fault.Remaining--;
                    return fault;
                }
            }

            return null;
        }
    }

    private static ResponseMessage ToMessage(FakeResponse response)
    {
        var message = new ResponseMessage { StatusCode = response.Status };
        message.AddHeader("Content-Type", response.ContentType);
        foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>())
        {
            message.AddHeader(name, value);
        }

        if (response.Body is not null)
        {
            message.BodyData = new BodyData
            {
                BodyAsString = response.Body,
                DetectedBodyType = BodyType.String,
                Encoding = Encoding.UTF8,
            };
        }

        return message;
    }

    public void Dispose()
    {
        Server.Stop();
        Server.Dispose();
        GC.SuppressFinalize(this);
    }

    private sealed class Fault(string method, Regex pattern, int status, int times, TimeSpan? delay, string? body)
    {
        public string Method { get; } = method;

        public Regex Pattern { get; } = pattern;

        public int Status { get; } = status;

        public int Remaining { get; set; } = times;

        public TimeSpan? Delay { get; } = delay;

        public string? Body { get; } = body;
    }
}
