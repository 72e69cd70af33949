using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Emulators;
using WireMock;
using WireMock.Matchers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;
using WireMock.Types;
using WireMock.Util;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>A test double for an upstream: an emulator served through <see cref="Upstream"/> (WireMock, with fault injection).</summary>
public interface IFakeUpstream
{
    FakeUpstream Upstream { get; }
}

/// <summary>
/// Serves an emulator's routes (<see cref="Emulator.HandleAsync"/>, the same behaviour the sandbox runs on Kestrel)
/// through one WireMock catch-all mapping, with fault injection in front of them. WireMock keeps every request,
/// so tests check them against the pinned upstream spec. Streamed answers are sent whole.
/// </summary>
public sealed class FakeUpstream : IDisposable
{
    private readonly Emulator _emulator;
    private readonly ConcurrentQueue<Fault> _faults = new();
    private readonly object _faultLock = new();
    private readonly ConcurrentBag<UpstreamHold> _holds = [];

    public FakeUpstream(Emulator emulator)
    {
        _emulator = emulator;
        Server = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"], StartAdminInterface = false });
        Server.Given(Request.Create().UsingAnyMethod().WithPath(new RegexMatcher(".*")))
            .RespondWith(Response.Create().WithCallback(DispatchAsync));
    }

    public WireMockServer Server { get; }

    public Uri Url => new(Server.Url!.TrimEnd('/') + "/");

    public IEnumerable<IRequestMessage> Requests => Server.LogEntries.Select(e => e.RequestMessage);

    /// <summary>Called after the emulator answered (e.g. to simulate the adapter dying right after an upstream call).</summary>
    public Action<EmulatorMessage, EmulatorResponse>? Observe { get; set; }

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

    /// <summary>
    /// The next <paramref name="times"/> matching requests are carried out, but their answers are lost: the client gets
    /// <paramref name="status"/> instead (a proxy's 502 or 504 after the upstream acted), with a Retry-After of
    /// <paramref name="retryAfter"/> if given. <paramref name="meanwhile"/> runs after the upstream acted and before the
    /// failure is answered: what other clients do while this one waits for its answer.
    /// </summary>
    public void LoseAnswer(string method, string pathPattern, int status = 502, int times = 1, TimeSpan? retryAfter = null, Func<Task>? meanwhile = null)
    {
        lock (_faultLock)
        {
            _faults.Enqueue(new Fault(method, new Regex("^" + pathPattern + "$"), status, times, null, null)
            {
                AfterHandling = true,
                RetryAfter = retryAfter,
                Meanwhile = meanwhile,
            });
        }
    }

    /// <summary>
    /// Matching requests (the next <paramref name="times"/> of them) wait unanswered until the hold is released (an
    /// upstream that hangs), then are served as usual; <see cref="Heal"/> lifts the hold for later requests only.
    /// </summary>
    public UpstreamHold Hold(string method, string pathPattern, int times = int.MaxValue)
    {
        var hold = new UpstreamHold();
        _holds.Add(hold);
        lock (_faultLock)
        {
            _faults.Enqueue(new Fault(method, new Regex("^" + pathPattern + "$"), 0, times, null, null) { Hold = hold });
        }

        return hold;
    }

    /// <summary>Every matching request fails until <see cref="Heal"/>.</summary>
    public void Break(string method, string pathPattern, int status, TimeSpan? delay = null) => Fail(method, pathPattern, status, int.MaxValue, delay);

    public void Heal()
    {
        lock (_faultLock)
        {
            _faults.Clear();
        }
    }

    private async Task<IResponseMessage> DispatchAsync(IRequestMessage request)
    {
        var fault = TakeFault(request);
        if (fault?.Hold is { } hold)
        {
            await hold.WaitAsync();
            fault = null;
        }

        if (fault is { AfterHandling: true })
        {
            await _emulator.HandleAsync(ToEmulatorMessage(request));
            if (fault.Meanwhile is { } meanwhile)
            {
                await meanwhile();
            }

            var headers = fault.RetryAfter is { } retryAfter
                ? new Dictionary<string, string> { ["Retry-After"] = ((int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture) }
                : null;
            return ToMessage(new EmulatorResponse(fault.Status, "{\"detail\":\"injected failure after the request was carried out\"}", Headers: headers), null);
        }

        if (fault is not null)
        {
            if (fault.Delay is { } wait)
            {
                await Task.Delay(wait);
            }

            return fault.Status == 0
                ? new ResponseMessage { FaultType = FaultType.MALFORMED_RESPONSE_CHUNK, StatusCode = 200 }
                : ToMessage(new EmulatorResponse(fault.Status, fault.Body ?? "{\"detail\":\"injected failure\"}"), null);
        }

        var message = ToEmulatorMessage(request);
        var response = await _emulator.HandleAsync(message);
        var body = await response.BodyTextAsync();
        Observe?.Invoke(message, response);
        return ToMessage(response, body);
    }

    private static EmulatorMessage ToEmulatorMessage(IRequestMessage request)
    {
        var headers = (request.Headers ?? new Dictionary<string, WireMockList<string>>())
            .ToDictionary(h => h.Key, h => h.Value.ToArray(), StringComparer.OrdinalIgnoreCase);
        return new EmulatorMessage
        {
            Method = request.Method,
            Path = request.Path,
            PathAndQuery = request.Path + (string.IsNullOrEmpty(request.RawQuery) ? string.Empty : "?" + request.RawQuery.TrimStart('?')),
            Query = (request.Query ?? new Dictionary<string, WireMockList<string>>()).ToDictionary(q => q.Key, q => q.Value.ToArray()),
            Headers = headers,
            ContentType = headers.TryGetValue("Content-Type", out var type) ? type.FirstOrDefault() : null,
            BodyAsBytes = request.BodyAsBytes ?? (request.Body is { } text ? Encoding.UTF8.GetBytes(text) : null),
        };
    }

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

    private static ResponseMessage ToMessage(EmulatorResponse response, string? streamed)
    {
        var message = new ResponseMessage { StatusCode = response.Status };
        message.AddHeader("Content-Type", response.ContentType);
        foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>())
        {
            message.AddHeader(name, value);
        }

        if ((streamed ?? response.Body) is { } body)
        {
            message.BodyData = new BodyData
            {
                BodyAsString = body,
                DetectedBodyType = BodyType.String,
                Encoding = Encoding.UTF8,
            };
        }

        return message;
    }

    public void Dispose()
    {
        foreach (var hold in _holds)
        {
            hold.Release();
        }

        Server.Stop();
        Server.Dispose();
    }

    private sealed class Fault(string method, Regex pattern, int status, int times, TimeSpan? delay, string? body)
    {
        public string Method { get; } = method;

        public Regex Pattern { get; } = pattern;

        public int Status { get; } = status;

        public int Remaining { get; set; } = times;

        public TimeSpan? Delay { get; } = delay;

        public string? Body { get; } = body;

        /// <summary>The emulator carries the request out before the failure is answered.</summary>
        public bool AfterHandling { get; init; }

        public UpstreamHold? Hold { get; init; }

        /// <summary>Seconds sent in the failure's Retry-After header.</summary>
        public TimeSpan? RetryAfter { get; init; }

        /// <summary>Run after the request was carried out, before its failure is answered.</summary>
        public Func<Task>? Meanwhile { get; init; }
    }
}

/// <summary>The WireMock host's test controls, on every fake itself (<c>waldur.Fail(...)</c>, <c>waldur.Requests</c>).</summary>
public static class FakeUpstreamMembers
{
    extension(IFakeUpstream fake)
    {
        public WireMockServer Server => fake.Upstream.Server;

        public IEnumerable<IRequestMessage> Requests => fake.Upstream.Requests;

        public Action<EmulatorMessage, EmulatorResponse>? Observe
        {
            get => fake.Upstream.Observe;
            set => fake.Upstream.Observe = value;
        }

        public int Count(string method, string pathPattern) => fake.Upstream.Count(method, pathPattern);

        public void Fail(string method, string pathPattern, int status, int times = 1, TimeSpan? delay = null, string? body = null) =>
            fake.Upstream.Fail(method, pathPattern, status, times, delay, body);

        public void Break(string method, string pathPattern, int status, TimeSpan? delay = null) => fake.Upstream.Break(method, pathPattern, status, delay);

        public void LoseAnswer(string method, string pathPattern, int status = 502, int times = 1, TimeSpan? retryAfter = null, Func<Task>? meanwhile = null) =>
            fake.Upstream.LoseAnswer(method, pathPattern, status, times, retryAfter, meanwhile);

        public UpstreamHold Hold(string method, string pathPattern, int times = int.MaxValue) => fake.Upstream.Hold(method, pathPattern, times);

        public void Heal() => fake.Upstream.Heal();
    }
}

/// <summary>Requests held by <see cref="FakeUpstream.Hold"/>: how many arrived, and their release.</summary>
public sealed class UpstreamHold
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _arrived;

    /// <summary>How many matching requests arrived (held, or served after the release).</summary>
    public int Arrived => Volatile.Read(ref _arrived);

    public bool Released => _released.Task.IsCompleted;

    /// <summary>Serves the held requests and every later one.</summary>
    public void Release() => _released.TrySetResult();

    internal Task WaitAsync()
    {
        Interlocked.Increment(ref _arrived);
        return _released.Task;
    }
}
