using System.Collections.Concurrent;
using System.Globalization;
using System.Net.WebSockets;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Unicode;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CmpWaldurAdapter.Waldur.Events.Stomp;

public enum StompConnectionState
{
    Created,
    Connecting,
    Connected,
    Disconnecting,
    Closed,
    Failed,
}

/// <summary>
/// A STOMP 1.2 client connection over a WebSocket, as served by RabbitMQ's web-stomp plugin.
/// </summary>
/// <remarks>
/// Single use: after a failure or a disconnect, create a new instance to reconnect, paced by
/// <see cref="StompReconnectBackoff"/>. Frames are written one at a time, so every method may be
/// called concurrently. MESSAGE frames are buffered without bound until read; for flow control
/// subscribe with <c>ack:client-individual</c> and a broker prefetch limit.
/// </remarks>
/// <example>
/// The consumer loop this type is built for:
/// <code>
/// var backoff = new StompReconnectBackoff();
/// while (!stoppingToken.IsCancellationRequested)
/// {
///     try
///     {
///         await using var connection = new StompConnection(logger, timeProvider);
///         await connection.ConnectAsync(uri, options, stoppingToken);
///         await connection.SubscribeAsync(destination, "waldur-events", awaitReceipt: true, cancellationToken: stoppingToken);
///         backoff.MarkConnected();
///         await foreach (var message in connection.ReadMessagesAsync(stoppingToken)) { /* handle */ }
///     }
///     catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
///     {
///         logger.LogWarning(ex, "STOMP consumer failed");
///     }
///
///     await backoff.DelayAsync(stoppingToken);
/// }
/// </code>
/// </example>
public sealed class StompConnection : IAsyncDisposable
{
    public const string ProtocolVersion = "1.2";

    private static readonly string[] SubProtocols = ["v12.stomp", "v11.stomp", "v10.stomp"];

    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _pendingReceipts = new(StringComparer.Ordinal);
    private readonly Channel<StompMessage> _messages =
        Channel.CreateUnbounded<StompMessage>(new UnboundedChannelOptions { SingleWriter = true });
    private readonly TaskCompletionSource<StompFrame> _connectedFrame = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _stateLock = new();

    private StompConnectOptions _options = new();
    private ClientWebSocket? _socket;
    private string _endpoint = string.Empty;
    private Task _receiveLoop = Task.CompletedTask;
    private Task _heartbeatLoop = Task.CompletedTask;
    private StompConnectionState _state;
    private Exception? _failure;
    private long _lastSendTimestamp;
    private long _lastReceiveTimestamp;
    private long _receiptCounter;

    // Set once DISCONNECT or disposal starts: from then on, the end of the socket is expected, and the heart-beat
    // loop neither sends nor judges the server's silence.
    private volatile bool _closing;

    // Once set, only the receive loop completes the message channel (see CompleteMessages).
    private volatile bool _receiving;
    private bool _disposed;

    public StompConnection(ILogger<StompConnection>? logger = null, TimeProvider? timeProvider = null)
    {
        _logger = logger ?? NullLogger<StompConnection>.Instance;
        _timeProvider = timeProvider ?? TimeProvider.System;
    }

    public StompConnectionState State
    {
        get
        {
            lock (_stateLock)
            {
                return _state;
            }
        }
    }

    /// <summary>The STOMP version from CONNECTED.</summary>
    public string? Version { get; private set; }

    /// <summary>The <c>server</c> header from CONNECTED.</summary>
    public string? Server { get; private set; }

    /// <summary>The <c>session</c> header from CONNECTED.</summary>
    public string? SessionId { get; private set; }

    /// <summary>The WebSocket subprotocol the server chose, if any.</summary>
    public string? SubProtocol => _socket?.SubProtocol;

    /// <summary>Negotiated: this client sends a heart-beat after this much idle time. Zero: disabled.</summary>
    public TimeSpan OutgoingHeartbeat { get; private set; }

    /// <summary>Negotiated: the server sends something at least this often. Zero: not monitored.</summary>
    public TimeSpan IncomingHeartbeat { get; private set; }

    /// <summary>
    /// MESSAGE frames in arrival order. The reader completes normally after <see cref="DisconnectAsync"/>
    /// and fails with <see cref="StompServerErrorException"/> or <see cref="StompConnectionLostException"/>
    /// (after every earlier message) when the connection breaks.
    /// </summary>
    public ChannelReader<StompMessage> Messages => _messages.Reader;

    /// <inheritdoc cref="Messages"/>
    public IAsyncEnumerable<StompMessage> ReadMessagesAsync(CancellationToken cancellationToken = default) =>
        _messages.Reader.ReadAllAsync(cancellationToken);

    /// <summary>
    /// Opens the WebSocket, sends CONNECT and waits for CONNECTED, all within
    /// <see cref="StompConnectOptions.ConnectTimeout"/>.
    /// </summary>
    /// <exception cref="StompServerErrorException">The server answered with ERROR (e.g. bad credentials).</exception>
    /// <exception cref="StompConnectionLostException">The socket could not be opened or broke.</exception>
    /// <exception cref="StompProtocolException">The server does not speak STOMP 1.2.</exception>
    /// <exception cref="TimeoutException">No CONNECTED in time.</exception>
    public async Task ConnectAsync(Uri wsUri, StompConnectOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(wsUri);
        ArgumentNullException.ThrowIfNull(options);
        if (!wsUri.IsAbsoluteUri || wsUri.Scheme is not ("ws" or "wss"))
        {
            throw new ArgumentException("The STOMP endpoint must be an absolute ws:// or wss:// URI.", nameof(wsUri));
        }

        options.Validate();
        lock (_stateLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_state != StompConnectionState.Created)
            {
                throw new InvalidOperationException("A StompConnection connects only once; create a new instance to reconnect.");
            }

            _state = StompConnectionState.Connecting;
        }

        _options = options;
        _endpoint = DescribeEndpoint(wsUri);
        var socket = new ClientWebSocket();
        foreach (var subProtocol in SubProtocols)
        {
            socket.Options.AddSubProtocol(subProtocol);
        }

        options.ConfigureWebSocket?.Invoke(socket.Options);
        _socket = socket;
        var parser = new StompFrameParser(options.MaxFrameHeaderBytes, options.MaxFrameBodyBytes);

        using var timeout = new CancellationTokenSource(options.ConnectTimeout, _timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token, _lifetime.Token);
        try
        {
            _logger.LogDebug("Opening STOMP WebSocket to {Endpoint}", _endpoint);
            await socket.ConnectAsync(wsUri, linked.Token);
            MarkReceived();
            MarkSent();
            _receiving = true;
            _receiveLoop = ReceiveLoopAsync(socket, parser, _lifetime.Token);

            await SendFrameCoreAsync(BuildConnectFrame(options), linked.Token, linked.Token);
            var connected = await _connectedFrame.Task.WaitAsync(linked.Token);
            ApplyConnected(connected, options);
            lock (_stateLock)
            {
                if (_state != StompConnectionState.Connecting)
                {
                    throw _failure ?? new StompConnectionLostException(
                        "The STOMP connection was closed while connecting.", StompConnectionLostReason.ClosedLocally);
                }

                _state = StompConnectionState.Connected;
            }
        }
        catch (Exception ex)
        {
            var error = TranslateConnectFailure(ex, cancellationToken, timeout.Token);
            Shutdown(error, abortSocket: true);
            if (ReferenceEquals(error, ex))
            {
                throw;
            }

            throw error;
        }

        _logger.LogInformation(
            "STOMP connected to {Endpoint}: version {Version}, server {Server}, session {Session}, heart-beats out {OutgoingMs} ms / in {IncomingMs} ms",
            _endpoint, Version, Server, SessionId, OutgoingHeartbeat.TotalMilliseconds, IncomingHeartbeat.TotalMilliseconds);
        _heartbeatLoop = HeartbeatLoopAsync(socket, _lifetime.Token);
    }

    /// <summary>Subscribes; <paramref name="ack"/> is <c>auto</c>, <c>client</c> or <c>client-individual</c>.</summary>
    public Task SubscribeAsync(
        string destination,
        string id,
        string ack = "auto",
        IEnumerable<KeyValuePair<string, string>>? headers = null,
        bool awaitReceipt = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        ArgumentException.ThrowIfNullOrEmpty(id);
        if (ack is not ("auto" or "client" or "client-individual"))
        {
            throw new ArgumentException($"Unknown ack mode '{ack}'.", nameof(ack));
        }

        List<KeyValuePair<string, string>> frameHeaders =
        [
            new(StompHeaderNames.Id, id),
            new(StompHeaderNames.Destination, destination),
            new(StompHeaderNames.Ack, ack),
        ];
        AppendExtraHeaders(frameHeaders, headers);
        return SendFrameAsync(StompCommands.Subscribe, frameHeaders, default, awaitReceipt, cancellationToken);
    }

    public Task UnsubscribeAsync(string id, bool awaitReceipt = false, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return SendFrameAsync(StompCommands.Unsubscribe, [new(StompHeaderNames.Id, id)], default, awaitReceipt, cancellationToken);
    }

    /// <summary>Sends a SEND frame; <c>content-length</c> is added for a non-empty body.</summary>
    public Task SendAsync(
        string destination,
        ReadOnlyMemory<byte> body,
        string? contentType = null,
        IEnumerable<KeyValuePair<string, string>>? headers = null,
        bool awaitReceipt = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        List<KeyValuePair<string, string>> frameHeaders = [new(StompHeaderNames.Destination, destination)];
        if (contentType is not null)
        {
            frameHeaders.Add(new(StompHeaderNames.ContentType, contentType));
        }

        AppendExtraHeaders(frameHeaders, headers);
        return SendFrameAsync(StompCommands.Send, frameHeaders, body, awaitReceipt, cancellationToken);
    }

    /// <summary>Sends a UTF-8 text body.</summary>
    public Task SendAsync(
        string destination,
        string body,
        string contentType = "text/plain;charset=utf-8",
        IEnumerable<KeyValuePair<string, string>>? headers = null,
        bool awaitReceipt = false,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        return SendAsync(destination, Encoding.UTF8.GetBytes(body), contentType, headers, awaitReceipt, cancellationToken);
    }

    /// <summary>Acknowledges a message from a <c>client</c> or <c>client-individual</c> subscription.</summary>
    public Task AckAsync(StompMessage message, bool awaitReceipt = false, CancellationToken cancellationToken = default) =>
        SendFrameAsync(StompCommands.Ack, [new(StompHeaderNames.Id, RequireAckId(message))], default, awaitReceipt, cancellationToken);

    /// <summary>Rejects a message from a <c>client</c> or <c>client-individual</c> subscription.</summary>
    public Task NackAsync(StompMessage message, bool awaitReceipt = false, CancellationToken cancellationToken = default) =>
        SendFrameAsync(StompCommands.Nack, [new(StompHeaderNames.Id, RequireAckId(message))], default, awaitReceipt, cancellationToken);

    /// <summary>
    /// Sends DISCONNECT with a receipt, waits up to <see cref="StompConnectOptions.DisconnectTimeout"/>
    /// for the RECEIPT, then closes the WebSocket. Does nothing unless connected. The message stream
    /// then ends normally.
    /// </summary>
    public async Task DisconnectAsync(CancellationToken cancellationToken = default)
    {
        lock (_stateLock)
        {
            if (_state != StompConnectionState.Connected)
            {
                return;
            }

            _state = StompConnectionState.Disconnecting;
            _closing = true;
        }

        var socket = _socket!;
        var receiptId = NextReceiptId();
        var receipt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _pendingReceipts[receiptId] = receipt;
        try
        {
            using var timeout = new CancellationTokenSource(_options.DisconnectTimeout, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            try
            {
                await SendFrameCoreAsync(
                    new StompFrame(StompCommands.Disconnect, [new(StompHeaderNames.Receipt, receiptId)]),
                    linked.Token,
                    linked.Token);
                await receipt.Task.WaitAsync(linked.Token);
                _logger.LogDebug("STOMP server acknowledged DISCONNECT");
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                // The server may already be gone; closing is all that is left to do either way.
                _logger.LogDebug("No RECEIPT for DISCONNECT ({Error}); closing the WebSocket anyway", ex.Message);
            }
            finally
            {
                _pendingReceipts.TryRemove(receiptId, out _);
            }

            await CloseSocketAsync(socket, cancellationToken);
        }
        finally
        {
            Shutdown(null, abortSocket: socket.State != WebSocketState.Closed);
            await AwaitLoopsAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        lock (_stateLock)
        {
            if (_disposed)
            {
                return;
            }
        }

        if (State == StompConnectionState.Connected)
        {
            try
            {
                await DisconnectAsync();
            }
            catch (Exception ex)
            {
                _logger.LogDebug("STOMP disconnect during dispose failed: {Error}", ex.Message);
            }
        }

        _closing = true;
        Shutdown(null, abortSocket: true);
        await AwaitLoopsAsync();
        lock (_stateLock)
        {
            _disposed = true;
        }

        _socket?.Dispose();
        _sendLock.Dispose();
        _lifetime.Dispose();
    }

    private static StompFrame BuildConnectFrame(StompConnectOptions options)
    {
        List<KeyValuePair<string, string>> headers =
        [
            new(StompHeaderNames.AcceptVersion, ProtocolVersion),
            new(StompHeaderNames.Host, options.Host),
        ];
        if (options.Login is not null)
        {
            headers.Add(new(StompHeaderNames.Login, options.Login));
        }

        if (options.Passcode is not null)
        {
            headers.Add(new(StompHeaderNames.Passcode, options.Passcode));
        }

        headers.Add(new(
            StompHeaderNames.HeartBeat,
            string.Create(
                CultureInfo.InvariantCulture,
                $"{(long)options.HeartbeatSendInterval.TotalMilliseconds},{(long)options.HeartbeatReceiveInterval.TotalMilliseconds}")));
        return new StompFrame(StompCommands.Connect, headers);
    }

    private static (int ServerSends, int ServerWants) ParseHeartbeat(string? header)
    {
        if (header is null)
        {
            return (0, 0);
        }

        // int bounds the intervals to ~24 days, which keeps every later TimeSpan sum in range.
        var parts = header.Split(',');
        if (parts.Length == 2
            && int.TryParse(parts[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var sx)
            && int.TryParse(parts[1].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var sy))
        {
            return (sx, sy);
        }

        throw new StompProtocolException($"Invalid heart-beat header '{header}' in CONNECTED.");
    }

    private static TimeSpan Negotiate(long mine, long theirs) =>
        mine == 0 || theirs == 0 ? TimeSpan.Zero : TimeSpan.FromMilliseconds(Math.Max(mine, theirs));

    private static void AppendExtraHeaders(List<KeyValuePair<string, string>> frameHeaders, IEnumerable<KeyValuePair<string, string>>? extra)
    {
        if (extra is null)
        {
            return;
        }

        foreach (var header in extra)
        {
            // A duplicate would silently lose to the first occurrence on the server side.
            if (frameHeaders.Exists(h => string.Equals(h.Key, header.Key, StringComparison.Ordinal))
                || string.Equals(header.Key, StompHeaderNames.Receipt, StringComparison.Ordinal)
                || string.Equals(header.Key, StompHeaderNames.ContentLength, StringComparison.Ordinal))
            {
                throw new ArgumentException($"Header '{header.Key}' is set by the client itself.", nameof(extra));
            }

            frameHeaders.Add(header);
        }
    }

    private static string RequireAckId(StompMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        return message.AckId ?? throw new InvalidOperationException(
            $"Message {message.MessageId} has no ack header: it came from an ack:auto subscription.");
    }

    // Only scheme, host, port and path: user info or query strings may carry credentials.
    private static string DescribeEndpoint(Uri uri) =>
        string.Create(CultureInfo.InvariantCulture, $"{uri.Scheme}://{uri.Host}:{uri.Port}{uri.AbsolutePath}");

    private static StompConnectionLostReason ReasonOf(Exception? failure) => failure switch
    {
        StompConnectionLostException lost => lost.Reason,
        StompServerErrorException => StompConnectionLostReason.ServerError,
        StompProtocolException => StompConnectionLostReason.ProtocolError,
        _ => StompConnectionLostReason.TransportError,
    };

    private void ApplyConnected(StompFrame connected, StompConnectOptions options)
    {
        var version = connected.GetHeader(StompHeaderNames.Version);
        if (!string.Equals(version, ProtocolVersion, StringComparison.Ordinal))
        {
            throw new StompProtocolException(
                $"The server answered CONNECT with STOMP version '{version ?? "1.0"}'; this client speaks only {ProtocolVersion}.");
        }

        var (sx, sy) = ParseHeartbeat(connected.GetHeader(StompHeaderNames.HeartBeat));
        OutgoingHeartbeat = Negotiate((long)options.HeartbeatSendInterval.TotalMilliseconds, sy);
        IncomingHeartbeat = Negotiate((long)options.HeartbeatReceiveInterval.TotalMilliseconds, sx);
        Version = version;
        Server = connected.GetHeader(StompHeaderNames.Server);
        SessionId = connected.GetHeader(StompHeaderNames.Session);
    }

    private Exception TranslateConnectFailure(Exception ex, CancellationToken callerToken, CancellationToken timeoutToken)
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            // The receive loop saw the real cause first: an ERROR frame, a closed socket, bad framing.
            return failure;
        }

        return ex switch
        {
            OperationCanceledException when callerToken.IsCancellationRequested => ex,
            OperationCanceledException when timeoutToken.IsCancellationRequested => new TimeoutException(
                $"STOMP connect to {_endpoint} did not complete within {_options.ConnectTimeout.TotalMilliseconds} ms.", ex),
            OperationCanceledException when _lifetime.IsCancellationRequested => new StompConnectionLostException(
                "The STOMP connection was closed while connecting.", StompConnectionLostReason.ClosedLocally, ex),
            StompException or ArgumentException => ex,
            _ => new StompConnectionLostException(
                $"Could not connect to {_endpoint}: {ex.Message}", StompConnectionLostReason.TransportError, ex),
        };
    }

    private async Task SendFrameAsync(
        string command,
        List<KeyValuePair<string, string>> headers,
        ReadOnlyMemory<byte> body,
        bool awaitReceipt,
        CancellationToken cancellationToken)
    {
        ThrowIfNotConnected();
        string? receiptId = null;
        TaskCompletionSource? receipt = null;
        if (awaitReceipt)
        {
            receiptId = NextReceiptId();
            receipt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            headers.Add(new(StompHeaderNames.Receipt, receiptId));
            _pendingReceipts[receiptId] = receipt;
        }

        var frame = new StompFrame(command, headers, body);
        try
        {
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lifetime.Token);

            // Cancelling a WebSocket write half-way aborts the socket, so the caller's token only
            // covers waiting for our turn and for the receipt.
            await SendFrameCoreAsync(frame, linked.Token, _lifetime.Token);
            if (receipt is not null)
            {
                await receipt.Task.WaitAsync(_options.ReceiptTimeout, _timeProvider, linked.Token);
            }
        }
        catch (Exception ex)
        {
            if (receiptId is not null)
            {
                _pendingReceipts.TryRemove(receiptId, out _);
            }

            // Shutdown faults the receipt before it cancels the lifetime token, but the cancellation
            // can still win the race to complete the wait: the receipt holds the real cause.
            if (receipt?.Task.Exception?.InnerException is { } cause)
            {
                ExceptionDispatchInfo.Throw(cause);
            }

            var error = TranslateOperationFailure(ex, command, cancellationToken);
            if (ReferenceEquals(error, ex))
            {
                throw;
            }

            throw error;
        }
    }

    private Exception TranslateOperationFailure(Exception ex, string command, CancellationToken callerToken)
    {
        if (ex is TimeoutException)
        {
            return new TimeoutException(
                $"No RECEIPT for {command} within {_options.ReceiptTimeout.TotalMilliseconds} ms.", ex);
        }

        if (ex is OperationCanceledException && callerToken.IsCancellationRequested)
        {
            return ex;
        }

        if (ex is StompException)
        {
            return ex;
        }

        if (Volatile.Read(ref _failure) is { } failure)
        {
            return new StompConnectionLostException(
                $"The STOMP connection failed: {failure.Message}", ReasonOf(failure), failure);
        }

        if (_closing)
        {
            return new StompConnectionLostException(
                $"The STOMP connection was closed before {command} completed.", StompConnectionLostReason.ClosedLocally, ex);
        }

        var lost = new StompConnectionLostException(
            $"Sending {command} to {_endpoint} failed: {ex.Message}", StompConnectionLostReason.TransportError, ex);
        Shutdown(lost, abortSocket: true);
        return lost;
    }

    private void ThrowIfNotConnected()
    {
        lock (_stateLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            switch (_state)
            {
                case StompConnectionState.Connected:
                    return;
                case StompConnectionState.Failed:
                    throw new StompConnectionLostException(
                        $"The STOMP connection failed: {_failure?.Message}", ReasonOf(_failure), _failure);
                case StompConnectionState.Created:
                case StompConnectionState.Connecting:
                case StompConnectionState.Disconnecting:
                case StompConnectionState.Closed:
                    throw new InvalidOperationException($"The STOMP connection is {_state}, not Connected.");
            }
        }
    }

    private async Task SendFrameCoreAsync(StompFrame frame, CancellationToken waitToken, CancellationToken writeToken)
    {
        var socket = _socket!;
        var bytes = StompFrameCodec.Encode(frame);

        // Text frames must be valid UTF-8; a binary body needs a binary WebSocket message.
        var messageType = Utf8.IsValid(bytes) ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
        await _sendLock.WaitAsync(waitToken);
        try
        {
            await socket.SendAsync(bytes, messageType, endOfMessage: true, writeToken);
            MarkSent();
        }
        finally
        {
            _sendLock.Release();
        }

        // The command only: header values may be credentials (CONNECT) or tokens.
        _logger.LogTrace("Sent STOMP {Command} frame ({Bytes} bytes)", frame.Command, bytes.Length);
    }

    private async Task ReceiveLoopAsync(ClientWebSocket socket, StompFrameParser parser, CancellationToken token)
    {
        var buffer = new byte[_options.ReceiveBufferSize];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer.AsMemory(), token);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await OnRemoteCloseAsync(socket);
                    return;
                }

                MarkReceived();
                parser.Feed(buffer.AsSpan(0, result.Count));
                while (parser.TryRead(out var frame))
                {
                    if (!frame.IsHeartbeat)
                    {
                        Dispatch(frame);
                    }
                }
            }
        }
        catch (Exception ex)
        {
            Shutdown(_closing || token.IsCancellationRequested ? null : ClassifyReceiveFailure(ex), abortSocket: true);
        }
        finally
        {
            CompleteMessages();
        }
    }

    private StompException ClassifyReceiveFailure(Exception ex) => ex switch
    {
        StompServerErrorException serverError => serverError,
        StompProtocolException protocol => new StompConnectionLostException(
            $"Invalid STOMP data from {_endpoint}: {protocol.Message}", StompConnectionLostReason.ProtocolError, protocol),
        _ => new StompConnectionLostException(
            $"The STOMP WebSocket to {_endpoint} broke: {ex.Message}", StompConnectionLostReason.TransportError, ex),
    };

    private async Task OnRemoteCloseAsync(ClientWebSocket socket)
    {
        if (_closing)
        {
            // DisconnectAsync completes the close handshake itself.
            Shutdown(null, abortSocket: false);
            return;
        }

        Shutdown(
            new StompConnectionLostException(
                $"The server closed the STOMP WebSocket ({socket.CloseStatus} {socket.CloseStatusDescription}).",
                StompConnectionLostReason.ClosedByServer),
            abortSocket: false);

        // Nothing more will be read: readers need not wait for the close handshake.
        CompleteMessages();
        try
        {
            using var timeout = new CancellationTokenSource(_options.DisconnectTimeout, _timeProvider);
            // Echo the server's status, as RFC 6455 suggests for the answering close frame.
            await socket.CloseOutputAsync(socket.CloseStatus ?? WebSocketCloseStatus.NormalClosure, null, timeout.Token);
        }
        catch (Exception ex)
        {
            _logger.LogDebug("Answering the server's WebSocket close failed: {Error}", ex.Message);
        }
    }

    private void Dispatch(StompFrame frame)
    {
        var connected = _connectedFrame.Task.IsCompletedSuccessfully;
        switch (frame.Command)
        {
            case StompCommands.Connected:
                if (!_connectedFrame.TrySetResult(frame))
                {
                    throw new StompProtocolException("Unexpected second CONNECTED frame.");
                }

                break;

            case StompCommands.Error:
                throw StompServerErrorException.FromFrame(frame, _options.Passcode);

            case StompCommands.Message when connected:
                var message = new StompMessage(frame);
                _logger.LogTrace(
                    "Received STOMP MESSAGE {MessageId} for subscription {Subscription}", message.MessageId, message.Subscription);
                _messages.Writer.TryWrite(message);
                break;

            case StompCommands.Receipt when connected:
                var receiptId = frame.GetHeader(StompHeaderNames.ReceiptId);
                if (receiptId is not null && _pendingReceipts.TryRemove(receiptId, out var waiter))
                {
                    waiter.TrySetResult();
                }
                else
                {
                    _logger.LogDebug("Ignoring STOMP RECEIPT {ReceiptId} that nothing waits for", receiptId);
                }

                break;

            default:
                throw new StompProtocolException(
                    $"Unexpected {frame.Command} frame from the server{(connected ? string.Empty : " before CONNECTED")}.");
        }
    }

    private async Task HeartbeatLoopAsync(ClientWebSocket socket, CancellationToken token)
    {
        var outgoing = OutgoingHeartbeat;
        var incoming = IncomingHeartbeat;
        if (outgoing == TimeSpan.Zero && incoming == TimeSpan.Zero)
        {
            return;
        }

        var deadAfter = incoming * _options.HeartbeatTolerance;
        try
        {
            // Once a close has begun, DISCONNECT and the close handshake are the last writes, and
            // DisconnectTimeout, not the watchdog, bounds the wait for the server.
            while (!token.IsCancellationRequested && !_closing)
            {
                var wait = TimeSpan.MaxValue;
                if (incoming > TimeSpan.Zero)
                {
                    var silent = _timeProvider.GetElapsedTime(Interlocked.Read(ref _lastReceiveTimestamp));
                    if (silent >= deadAfter)
                    {
                        Shutdown(
                            new StompConnectionLostException(
                                $"Nothing received from {_endpoint} for {silent.TotalMilliseconds:F0} ms; the server promised heart-beats every {incoming.TotalMilliseconds:F0} ms.",
                                StompConnectionLostReason.HeartbeatTimeout),
                            abortSocket: true,
                            unlessClosing: true);
                        return;
                    }

                    wait = deadAfter - silent;
                }

                if (outgoing > TimeSpan.Zero)
                {
                    var idle = _timeProvider.GetElapsedTime(Interlocked.Read(ref _lastSendTimestamp));
                    if (idle >= outgoing)
                    {
                        idle = await SendHeartbeatAsync(socket, outgoing, token);
                    }

                    wait = TimeSpan.FromTicks(Math.Min(wait.Ticks, (outgoing - idle).Ticks));
                }

                // Bounded below to avoid spinning, above to stay within Task.Delay's range.
                var delay = Math.Clamp(wait.Ticks, TimeSpan.TicksPerMillisecond, TimeSpan.TicksPerHour);
                await Task.Delay(TimeSpan.FromTicks(delay), _timeProvider, token);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Shut down by Shutdown().
        }
        catch (Exception ex)
        {
            Shutdown(
                _closing ? null : new StompConnectionLostException(
                    $"Sending a heart-beat to {_endpoint} failed: {ex.Message}", StompConnectionLostReason.TransportError, ex),
                abortSocket: true);
        }
    }

    /// <returns>The idle time after the call: zero if a beat went out.</returns>
    private async Task<TimeSpan> SendHeartbeatAsync(ClientWebSocket socket, TimeSpan outgoing, CancellationToken token)
    {
        await _sendLock.WaitAsync(token);
        try
        {
            // Whoever held the lock may just have sent a frame, which counts as a beat; or begun a close,
            // after which a beat would follow DISCONNECT or fail on the closing socket and abort it.
            var idle = _timeProvider.GetElapsedTime(Interlocked.Read(ref _lastSendTimestamp));
            if (idle < outgoing || _closing)
            {
                return idle;
            }

            await socket.SendAsync(StompFrameCodec.HeartbeatBytes, WebSocketMessageType.Text, endOfMessage: true, token);
            MarkSent();
            return TimeSpan.Zero;
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private async Task CloseSocketAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = new CancellationTokenSource(_options.DisconnectTimeout, _timeProvider);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "DISCONNECT", linked.Token);
            }

            // The receive loop ends when the server's close frame (or the end of the stream) arrives.
            await _receiveLoop.WaitAsync(linked.Token);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            _logger.LogDebug("Closing the STOMP WebSocket gracefully failed: {Error}", ex.Message);
        }
    }

    private async Task AwaitLoopsAsync()
    {
        // Both loops end on their own once the lifetime token is cancelled; neither throws.
        await _receiveLoop;
        await _heartbeatLoop;
    }

    /// <summary>Ends the connection once: null for an orderly end, else the failure every waiter sees.</summary>
    /// <param name="unlessClosing">Do nothing if a close has begun: the close ends the connection itself.</param>
    private void Shutdown(Exception? error, bool abortSocket, bool unlessClosing = false)
    {
        StompConnectionState previous;
        lock (_stateLock)
        {
            previous = _state;
            if (previous is StompConnectionState.Closed or StompConnectionState.Failed)
            {
                return;
            }

            if (_closing)
            {
                if (unlessClosing)
                {
                    return;
                }

                error = null;
            }

            _state = error is null ? StompConnectionState.Closed : StompConnectionState.Failed;
            _failure = error;
        }

        if (error is null)
        {
            _logger.LogInformation("STOMP connection to {Endpoint} closed", _endpoint);
        }
        else
        {
            _logger.LogWarning("STOMP connection to {Endpoint} failed: {Error}", _endpoint, error.Message);
        }

        var ending = error ?? new StompConnectionLostException(
            "The STOMP connection was closed by this client.", StompConnectionLostReason.ClosedLocally);
        if (previous == StompConnectionState.Connecting)
        {
            _connectedFrame.TrySetException(ending);
        }

        foreach (var id in _pendingReceipts.Keys)
        {
            if (_pendingReceipts.TryRemove(id, out var waiter))
            {
                waiter.TrySetException(ending);
            }
        }

        if (!_receiving)
        {
            CompleteMessages();
        }

        _lifetime.Cancel();
        if (abortSocket)
        {
            _socket?.Abort();
        }
    }

    /// <summary>
    /// Ends the message stream with the connection's failure, if any. Once the receive loop runs, only it calls this,
    /// as it stops reading: a MESSAGE it read while another thread ended the connection (a heart-beat timeout, a
    /// failed heart-beat send, a local close) is still delivered before the end instead of being dropped.
    /// </summary>
    private void CompleteMessages()
    {
        Exception? failure;
        lock (_stateLock)
        {
            failure = _failure;
        }

        _messages.Writer.TryComplete(failure);
    }

    private string NextReceiptId() =>
        "receipt-" + Interlocked.Increment(ref _receiptCounter).ToString(CultureInfo.InvariantCulture);

    private void MarkSent() => Interlocked.Exchange(ref _lastSendTimestamp, _timeProvider.GetTimestamp());

    private void MarkReceived() => Interlocked.Exchange(ref _lastReceiveTimestamp, _timeProvider.GetTimestamp());
}
