using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Threading.Channels;
using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

/// <summary>
/// In-process STOMP-over-WebSocket server on Kestrel (127.0.0.1, random port). Each accepted
/// socket becomes a <see cref="FakeStompSession"/> that a test scripts frame by frame.
/// </summary>
public sealed class FakeStompServer : IAsyncDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    private readonly WebApplication _app;
    private readonly Channel<FakeStompSession> _accepted = Channel.CreateUnbounded<FakeStompSession>();
    private readonly ConcurrentBag<FakeStompSession> _sessions = [];

    private FakeStompServer(WebApplication app, Uri uri)
    {
        _app = app;
        Uri = uri;
    }

    public Uri Uri { get; }

    public static async Task<FakeStompServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.UseWebSockets();
        FakeStompServer? server = null;
        app.Map("/ws", async context =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                return;
            }

            var requested = context.WebSockets.WebSocketRequestedProtocols.ToArray();
            var subProtocol = requested.Contains("v12.stomp") ? "v12.stomp" : null;
            var socket = await context.WebSockets.AcceptWebSocketAsync(subProtocol);
            var session = new FakeStompSession(context, socket, requested, subProtocol);
            server!._sessions.Add(session);
            server._accepted.Writer.TryWrite(session);
            await session.RunAsync();
        });
        await app.StartAsync();
        var address = new Uri(app.Urls.Single());
        server = new FakeStompServer(app, new Uri($"ws://{address.Host}:{address.Port}/ws"));
        return server;
    }

    public async Task<FakeStompSession> AcceptAsync()
    {
        using var timeout = new CancellationTokenSource(DefaultTimeout);
        return await _accepted.Reader.ReadAsync(timeout.Token);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var session in _sessions)
        {
            session.Abort();
        }

        using var stop = new CancellationTokenSource(DefaultTimeout);
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}

public sealed class FakeStompSession
{
    private readonly HttpContext _context;
    private readonly WebSocket _socket;
    private readonly Channel<StompFrame> _frames = Channel.CreateUnbounded<StompFrame>();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<TimeSpan> _heartbeats = [];
    private readonly List<byte> _raw = [];
    private readonly TaskCompletionSource<WebSocketCloseStatus?> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closeReceived = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _closeAnswer = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _holdCloseAnswer;
    private bool _finished;

    internal FakeStompSession(HttpContext context, WebSocket socket, string[] requestedSubProtocols, string? subProtocol)
    {
        _context = context;
        _socket = socket;
        RequestedSubProtocols = requestedSubProtocols;
        AcceptedSubProtocol = subProtocol;
    }

    public IReadOnlyList<string> RequestedSubProtocols { get; }

    public string? AcceptedSubProtocol { get; }

    /// <summary>Completes when the client's side ends: its close status, or null if the socket just broke.</summary>
    public Task<WebSocketCloseStatus?> Ended => _ended.Task;

    /// <summary>Completes when the client's WebSocket close frame arrives.</summary>
    public Task CloseReceived => _closeReceived.Task;

    /// <summary>Until <see cref="AnswerClose"/>, the client's close frame is left unanswered, its close handshake half done.</summary>
    public void HoldCloseAnswer() => _holdCloseAnswer = true;

    public void AnswerClose() => _closeAnswer.TrySetResult();

    /// <summary>Arrival times (since the session started) of heart-beat EOLs from the client.</summary>
    public IReadOnlyList<TimeSpan> HeartbeatArrivals
    {
        get
        {
            lock (_heartbeats)
            {
                return [.. _heartbeats];
            }
        }
    }

    /// <summary>Every byte received from the client so far.</summary>
    public byte[] RawReceived
    {
        get
        {
            lock (_raw)
            {
                return [.. _raw];
            }
        }
    }

    public async Task<StompFrame> ReceiveFrameAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? FakeStompServer.DefaultTimeout);
        return await _frames.Reader.ReadAsync(cts.Token);
    }

    public async Task<StompFrame> ExpectFrameAsync(string command)
    {
        var frame = await ReceiveFrameAsync();
        Assert.Equal(command, frame.Command);
        return frame;
    }

    /// <summary>True if a frame arrives within the window (heart-beats do not count).</summary>
    public async Task<bool> AnyFrameWithinAsync(TimeSpan window)
    {
        using var cts = new CancellationTokenSource(window);
        try
        {
            return await _frames.Reader.WaitToReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public Task SendFrameAsync(string command, IEnumerable<KeyValuePair<string, string>>? headers = null, string? body = null) =>
        SendFrameAsync(new StompFrame(command, headers, body is null ? default : System.Text.Encoding.UTF8.GetBytes(body)));

    public Task SendFrameAsync(StompFrame frame) => SendRawAsync(StompFrameCodec.Encode(frame));

    public async Task SendRawAsync(byte[] bytes)
    {
        await _sendLock.WaitAsync();
        try
        {
            await _socket.SendAsync(bytes, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    public Task SendConnectedAsync(string heartBeat = "0,0", string version = "1.2") =>
        SendFrameAsync(StompCommands.Connected,
        [
            new("version", version),
            new("heart-beat", heartBeat),
            new("session", "session-1"),
            new("server", "FakeStomp/1.0"),
        ]);

    public Task SendHeartbeatAsync() => SendRawAsync(StompFrameCodec.HeartbeatBytes.ToArray());

    /// <summary>
    /// Closes the WebSocket from the server side with a proper close handshake, unless the client has already
    /// dropped it (as it may once it has read an ERROR frame: the server closes after one anyway).
    /// </summary>
    public async Task CloseAsync(WebSocketCloseStatus status = WebSocketCloseStatus.NormalClosure, string description = "bye")
    {
        await _sendLock.WaitAsync();
        try
        {
            if (_socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                await _socket.CloseOutputAsync(status, description, CancellationToken.None);
            }
        }
        catch (WebSocketException) when (_socket.State is WebSocketState.Aborted or WebSocketState.Closed)
        {
            // The client dropped the connection between the check and the close.
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Drops the TCP connection without a WebSocket close handshake.</summary>
    public void Abort()
    {
        AnswerClose();
        lock (_raw)
        {
            // Once the handler returned, Kestrel has recycled the HttpContext.
            if (!_finished)
            {
                _context.Abort();
            }
        }
    }

    internal async Task RunAsync()
    {
        var parser = new StompFrameParser();
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var result = await _socket.ReceiveAsync(buffer.AsMemory(), _context.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    _closeReceived.TrySetResult();
                    if (_holdCloseAnswer)
                    {
                        await _closeAnswer.Task;
                    }

                    if (_socket.State == WebSocketState.CloseReceived)
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None);
                    }

                    _ended.TrySetResult(_socket.CloseStatus);
                    return;
                }

                lock (_raw)
                {
                    _raw.AddRange(buffer.AsSpan(0, result.Count));
                }

                parser.Feed(buffer.AsSpan(0, result.Count));
                while (parser.TryRead(out var frame))
                {
                    if (frame.IsHeartbeat)
                    {
                        lock (_heartbeats)
                        {
                            _heartbeats.Add(_clock.Elapsed);
                        }
                    }
                    else
                    {
                        _frames.Writer.TryWrite(frame);
                    }
                }
            }
        }
        catch (Exception)
        {
            _ended.TrySetResult(null);
        }
        finally
        {
            _frames.Writer.TryComplete();
            lock (_raw)
            {
                _finished = true;
            }
        }
    }
}
