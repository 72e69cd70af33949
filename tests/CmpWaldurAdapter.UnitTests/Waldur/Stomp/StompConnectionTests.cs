using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

public sealed class StompConnectionTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly List<StompConnection> _clients = [];
    private readonly ReadCountingClock _clock = new();
    private FakeStompServer _server = null!;

    public async Task InitializeAsync() => _server = await FakeStompServer.StartAsync();

    public async Task DisposeAsync()
    {
        // The server first: a client left connected on the fake clock would wait for its DISCONNECT's RECEIPT forever.
        await _server.DisposeAsync();
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }
    }

    /// <summary>Quiet by default: heart-beats off, short timeouts.</summary>
    private static StompConnectOptions Options(Action<StompConnectOptions>? configure = null)
    {
        var options = new StompConnectOptions
        {
            Host = "/",
            Login = "guest",
            Passcode = "guest",
            HeartbeatSendInterval = TimeSpan.Zero,
            HeartbeatReceiveInterval = TimeSpan.Zero,
            ConnectTimeout = Timeout,
            ReceiptTimeout = Timeout,
            DisconnectTimeout = Timeout,
        };
        configure?.Invoke(options);
        return options;
    }

    private StompConnection NewClient(ILogger<StompConnection>? logger = null, TimeProvider? timeProvider = null)
    {
        var client = new StompConnection(logger, timeProvider);
        _clients.Add(client);
        return client;
    }

    private async Task<(StompConnection Client, FakeStompSession Session)> ConnectAsync(
        StompConnectOptions? options = null, string serverHeartBeat = "0,0", ILogger<StompConnection>? logger = null)
    {
        var client = NewClient(logger);
        var connecting = client.ConnectAsync(_server.Uri, options ?? Options());
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);
        await session.SendConnectedAsync(serverHeartBeat);
        await connecting.WaitAsync(Timeout);
        return (client, session);
    }

    /// <summary>
    /// Connects a client whose timers run on <see cref="_clock"/>. Off xUnit's synchronization context, so the
    /// heart-beat loop resumes inline as the clock advances: whatever it does with the time given, it has done when
    /// <see cref="AdvanceAsync"/> returns.
    /// </summary>
    private async Task<(StompConnection Client, FakeStompSession Session)> ConnectOnTheFakeClockAsync(
        StompConnectOptions options, string serverHeartBeat, ILogger<StompConnection>? logger = null)
    {
        var client = NewClient(logger, _clock);
        var connecting = Task.Run(() => client.ConnectAsync(_server.Uri, options));
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);
        await session.SendConnectedAsync(serverHeartBeat);
        await connecting.WaitAsync(Timeout);
        return (client, session);
    }

    private Task AdvanceAsync(TimeSpan by) => Task.Run(() => _clock.Advance(by));

    /// <summary>Sends a heart-beat and waits until the client has taken it in: it reads the clock to stamp any data.</summary>
    private async Task SendHeartbeatAndWaitForItAsync(FakeStompSession session)
    {
        var reads = _clock.Reads;
        await session.SendHeartbeatAsync();
        await WaitUntilAsync(() => _clock.Reads > reads, "the client to take in a heart-beat");
    }

    /// <summary>
    /// The server may read a frame before the client's send of it returns, and a timeout firing during the send
    /// aborts the socket: before advancing the clock past a timeout, wait for the send to return.
    /// </summary>
    private static Task WaitUntilSentAsync(CapturingLogger<StompConnection> logger, string command) =>
        WaitUntilAsync(
            () => logger.Lines.Any(line => line.Contains($"Sent STOMP {command} frame", StringComparison.Ordinal)),
            $"{command} to be sent");

    private static async Task DisconnectGracefullyAsync(StompConnection client, FakeStompSession session)
    {
        var disconnecting = client.DisconnectAsync();
        var disconnect = await session.ExpectFrameAsync(StompCommands.Disconnect);
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", disconnect.GetHeader("receipt")!)]);
        await disconnecting.WaitAsync(Timeout);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Timeout, $"timed out waiting for {what}");
            await Task.Delay(10);
        }
    }

    /// <summary>Reads the stream to its end and returns the messages and how it ended.</summary>
    private static async Task<(List<StompMessage> Messages, Exception? End)> DrainAsync(StompConnection client)
    {
        var messages = new List<StompMessage>();
        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            await foreach (var message in client.ReadMessagesAsync(timeout.Token))
            {
                messages.Add(message);
            }

            return (messages, null);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return (messages, ex);
        }
    }

    private static async Task<StompMessage> ReadOneAsync(StompConnection client)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        return await client.Messages.ReadAsync(timeout.Token);
    }

    private static KeyValuePair<string, string>[] MessageHeaders(string messageId, string subscription = "sub-1") =>
    [
        new("destination", "/exchange/waldur/events"),
        new("subscription", subscription),
        new("message-id", messageId),
    ];

    [Fact]
    public async Task Connect_sends_exactly_the_CONNECT_headers_without_escaping_and_never_logs_the_passcode()
    {
        const string passcode = "s3cr:et\\pw";
        var logger = new CapturingLogger<StompConnection>();
        var client = NewClient(logger);
        var options = new StompConnectOptions { Host = "waldur-vhost", Login = "adapter", Passcode = passcode };

        var connecting = client.ConnectAsync(_server.Uri, options);
        var session = await _server.AcceptAsync();
        var connect = await session.ExpectFrameAsync(StompCommands.Connect);

        Assert.Equal(
            [
                new("accept-version", "1.2"),
                new("host", "waldur-vhost"),
                new("login", "adapter"),
                new("passcode", passcode),
                new("heart-beat", "10000,10000"),
            ],
            connect.Headers);
        Assert.True(connect.Body.IsEmpty);
        Assert.Contains("\npasscode:s3cr:et\\pw\n", Encoding.UTF8.GetString(session.RawReceived), StringComparison.Ordinal);
        Assert.Equal(["v12.stomp", "v11.stomp", "v10.stomp"], session.RequestedSubProtocols);

        await session.SendConnectedAsync();
        await connecting.WaitAsync(Timeout);
        Assert.Equal(StompConnectionState.Connected, client.State);
        Assert.Equal("v12.stomp", client.SubProtocol);

        await client.SubscribeAsync("/exchange/waldur", "s");
        await session.ExpectFrameAsync(StompCommands.Subscribe);
        await DisconnectGracefullyAsync(client, session);

        Assert.NotEmpty(logger.Lines);
        Assert.DoesNotContain(logger.Lines, line => line.Contains("s3cr", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(10_000, 20_000, "30000,5000", 10_000, 30_000)]
    [InlineData(10_000, 20_000, "5000,40000", 40_000, 20_000)]
    [InlineData(0, 20_000, "30000,40000", 0, 30_000)]
    [InlineData(10_000, 0, "30000,40000", 40_000, 0)]
    [InlineData(10_000, 10_000, "0,0", 0, 0)]
    public async Task CONNECTED_heart_beats_are_negotiated_per_spec(int cx, int cy, string serverHeartBeat, int expectedOut, int expectedIn)
    {
        var options = Options(o =>
        {
            o.HeartbeatSendInterval = TimeSpan.FromMilliseconds(cx);
            o.HeartbeatReceiveInterval = TimeSpan.FromMilliseconds(cy);
        });

        var (client, session) = await ConnectAsync(options, serverHeartBeat);

        Assert.Equal(TimeSpan.FromMilliseconds(expectedOut), client.OutgoingHeartbeat);
        Assert.Equal(TimeSpan.FromMilliseconds(expectedIn), client.IncomingHeartbeat);
        Assert.Equal("1.2", client.Version);
        Assert.Equal("FakeStomp/1.0", client.Server);
        Assert.Equal("session-1", client.SessionId);
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task A_server_that_does_not_speak_STOMP_1_2_is_refused()
    {
        var client = NewClient();
        var connecting = client.ConnectAsync(_server.Uri, Options());
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);

        await session.SendConnectedAsync(version: "1.1");

        var error = await Assert.ThrowsAsync<StompProtocolException>(() => connecting.WaitAsync(Timeout));
        Assert.Contains("1.1", error.Message, StringComparison.Ordinal);
        Assert.Equal(StompConnectionState.Failed, client.State);
    }

    [Fact]
    public async Task Server_ERROR_during_CONNECT_throws_the_server_error_with_any_echoed_passcode_masked()
    {
        var logger = new CapturingLogger<StompConnection>();
        var client = NewClient(logger);
        var connecting = client.ConnectAsync(_server.Uri, Options(o => o.Passcode = "pw-9f8e7d"));
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);

        await session.SendFrameAsync(
            StompCommands.Error,
            [new("message", "Access refused for user 'guest'")],
            "Login or password incorrect\npasscode:pw-9f8e7d");

        var error = await Assert.ThrowsAsync<StompServerErrorException>(() => connecting.WaitAsync(Timeout));
        Assert.Equal("Access refused for user 'guest'", error.ServerMessage);
        Assert.Equal("Login or password incorrect\npasscode:***", error.ServerDetails);
        Assert.Contains("Access refused", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("pw-9f8e7d", error.Message, StringComparison.Ordinal);
        Assert.Equal(StompConnectionState.Failed, client.State);
        Assert.IsType<StompServerErrorException>((await DrainAsync(client)).End);
        Assert.Contains(logger.Lines, line => line.Contains("Access refused", StringComparison.Ordinal));
        Assert.DoesNotContain(logger.Lines, line => line.Contains("pw-9f8e7d", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Connect_times_out_when_CONNECTED_never_comes()
    {
        var logger = new CapturingLogger<StompConnection>();
        var client = NewClient(logger, _clock);

        var connecting = Task.Run(
            () => client.ConnectAsync(_server.Uri, Options(o => o.ConnectTimeout = TimeSpan.FromMilliseconds(300))));
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);
        await WaitUntilSentAsync(logger, StompCommands.Connect);

        await AdvanceAsync(TimeSpan.FromMilliseconds(299));
        Assert.False(connecting.IsCompleted);
        await AdvanceAsync(TimeSpan.FromMilliseconds(1));

        await Assert.ThrowsAsync<TimeoutException>(() => connecting.WaitAsync(Timeout));
        Assert.Equal(StompConnectionState.Failed, client.State);
        Assert.Null(await session.Ended.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Connect_to_a_closed_port_fails_as_a_lost_connection()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var client = NewClient();

        var error = await Assert.ThrowsAsync<StompConnectionLostException>(
            () => client.ConnectAsync(new Uri($"ws://127.0.0.1:{port}/ws"), Options()).WaitAsync(Timeout));

        Assert.Equal(StompConnectionLostReason.TransportError, error.Reason);
    }

    [Fact]
    public async Task A_connection_connects_only_once()
    {
        var (client, session) = await ConnectAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => client.ConnectAsync(_server.Uri, Options()));
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task SUBSCRIBE_and_UNSUBSCRIBE_frames_carry_the_given_headers()
    {
        var (client, session) = await ConnectAsync();

        await client.SubscribeAsync(
            "/exchange/waldur/events", "sub-1", "client-individual", [new("prefetch-count", "10"), new("x-note", "a:b")]);
        var subscribe = await session.ExpectFrameAsync(StompCommands.Subscribe);
        await client.UnsubscribeAsync("sub-1");
        var unsubscribe = await session.ExpectFrameAsync(StompCommands.Unsubscribe);

        Assert.Equal(
            [
                new("id", "sub-1"),
                new("destination", "/exchange/waldur/events"),
                new("ack", "client-individual"),
                new("prefetch-count", "10"),
                new("x-note", "a:b"),
            ],
            subscribe.Headers);
        Assert.True(subscribe.Body.IsEmpty);
        Assert.Contains("\nx-note:a\\cb\n", Encoding.UTF8.GetString(session.RawReceived), StringComparison.Ordinal);
        Assert.Equal([new("id", "sub-1")], unsubscribe.Headers);
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task Subscribe_validates_its_arguments()
    {
        var client = NewClient();

        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("/q", "s", "sometimes"));
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("/q", "s", headers: [new("id", "other")]));
        await Assert.ThrowsAsync<ArgumentException>(() => client.SubscribeAsync("/q", "s", headers: [new("receipt", "r")]));
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.SubscribeAsync("/q", "s"));
    }

    [Fact]
    public async Task MESSAGE_frames_are_delivered_with_headers_and_body_however_the_WebSocket_splits_them()
    {
        var (client, session) = await ConnectAsync();
        await client.SubscribeAsync("/exchange/waldur/events", "sub-1");
        await session.ExpectFrameAsync(StompCommands.Subscribe);
        const string json = "{\"uuid\":\"0f1e\",\"name\":\"Prüfung\"}";

        await session.SendFrameAsync(
            StompCommands.Message,
            [.. MessageHeaders("m-1"), new("content-type", "application/json"), new("x-source", "waldur:mastermind")],
            json);
        var binary = StompFrameCodec.Encode(new StompFrame(StompCommands.Message, MessageHeaders("m-2"), new byte[] { 1, 0, 2, 0 }));
        await session.SendRawAsync(binary[..7]);
        await session.SendRawAsync(binary[7..]);
        var two = StompFrameCodec.Encode(new StompFrame(StompCommands.Message, MessageHeaders("m-3"), Encoding.UTF8.GetBytes("three")))
            .Concat("\n"u8.ToArray())
            .Concat(StompFrameCodec.Encode(new StompFrame(StompCommands.Message, MessageHeaders("m-4"))))
            .ToArray();
        await session.SendRawAsync(two);

        var first = await ReadOneAsync(client);
        Assert.Equal("/exchange/waldur/events", first.Destination);
        Assert.Equal("sub-1", first.Subscription);
        Assert.Equal("m-1", first.MessageId);
        Assert.Equal("application/json", first.ContentType);
        Assert.Equal("waldur:mastermind", first.GetHeader("x-source"));
        Assert.Null(first.AckId);
        Assert.Equal(json, first.GetBodyAsString());
        Assert.Equal(Encoding.UTF8.GetBytes(json), first.Body.ToArray());

        var second = await ReadOneAsync(client);
        Assert.Equal("m-2", second.MessageId);
        Assert.Equal(new byte[] { 1, 0, 2, 0 }, second.Body.ToArray());

        var third = await ReadOneAsync(client);
        var fourth = await ReadOneAsync(client);
        Assert.Equal(("m-3", "three"), (third.MessageId, third.GetBodyAsString()));
        Assert.Equal(("m-4", 0), (fourth.MessageId, fourth.Body.Length));
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task A_receipt_request_completes_only_on_the_matching_RECEIPT()
    {
        var (client, session) = await ConnectAsync();

        var subscribing = client.SubscribeAsync("/queue/a", "s1", awaitReceipt: true);
        var subscribe = await session.ExpectFrameAsync(StompCommands.Subscribe);
        var receiptId = subscribe.GetHeader("receipt");
        Assert.False(string.IsNullOrEmpty(receiptId));

        // A RECEIPT for something else, then a MESSAGE: once the MESSAGE is read, the RECEIPT before
        // it has been processed too.
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", receiptId + "-other")]);
        await session.SendFrameAsync(StompCommands.Message, MessageHeaders("m-1", "s1"));
        await ReadOneAsync(client);
        Assert.False(subscribing.IsCompleted);

        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", receiptId!)]);
        await subscribing.WaitAsync(Timeout);
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task A_missing_receipt_times_out_and_leaves_the_connection_usable()
    {
        var (client, session) = await ConnectAsync(Options(o => o.ReceiptTimeout = TimeSpan.FromMilliseconds(200)));

        await Assert.ThrowsAsync<TimeoutException>(() => client.UnsubscribeAsync("s1", awaitReceipt: true).WaitAsync(Timeout));

        Assert.Equal(StompConnectionState.Connected, client.State);
        await session.ExpectFrameAsync(StompCommands.Unsubscribe);
        await client.SendAsync("/queue/a", "still alive");
        Assert.Equal("still alive", (await session.ExpectFrameAsync(StompCommands.Send)).GetBodyAsString());
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task Server_ERROR_after_SUBSCRIBE_ends_the_stream_with_the_server_error_after_earlier_messages()
    {
        var (client, session) = await ConnectAsync();
        await client.SubscribeAsync("/exchange/missing", "sub-1");
        await session.ExpectFrameAsync(StompCommands.Subscribe);

        await session.SendFrameAsync(StompCommands.Message, MessageHeaders("m-1"), "before the error");
        await session.SendFrameAsync(
            StompCommands.Error, [new("message", "not_found")], "NOT_FOUND - no exchange 'missing' in vhost '/'");
        await session.CloseAsync();

        var (messages, end) = await DrainAsync(client);
        Assert.Equal(["m-1"], messages.Select(m => m.MessageId));
        var error = Assert.IsType<StompServerErrorException>(end);
        Assert.Equal("not_found", error.ServerMessage);
        Assert.Contains("no exchange 'missing'", error.ServerDetails, StringComparison.Ordinal);
        Assert.Equal(StompConnectionState.Failed, client.State);

        var later = await Assert.ThrowsAsync<StompConnectionLostException>(() => client.SendAsync("/queue/a", "x"));
        Assert.Equal(StompConnectionLostReason.ServerError, later.Reason);
    }

    [Fact]
    public async Task A_receipt_request_fails_with_the_server_error_that_names_it()
    {
        var (client, session) = await ConnectAsync();

        var subscribing = client.SubscribeAsync("/exchange/missing", "sub-1", awaitReceipt: true);
        var subscribe = await session.ExpectFrameAsync(StompCommands.Subscribe);
        await session.SendFrameAsync(
            StompCommands.Error, [new("message", "not_found"), new("receipt-id", subscribe.GetHeader("receipt")!)]);

        var error = await Assert.ThrowsAsync<StompServerErrorException>(() => subscribing.WaitAsync(Timeout));
        Assert.Equal("not_found", error.ServerMessage);
        Assert.Equal(subscribe.GetHeader("receipt"), error.ReceiptId);
    }

    [Fact]
    public async Task An_idle_client_sends_heart_beats_at_the_negotiated_interval()
    {
        // cx = 100 ms, server sy = 150 ms: the client must beat every max(100, 150) = 150 ms.
        var options = Options(o => o.HeartbeatSendInterval = TimeSpan.FromMilliseconds(100));
        var (client, session) = await ConnectOnTheFakeClockAsync(options, serverHeartBeat: "0,150");
        Assert.Equal(TimeSpan.FromMilliseconds(150), client.OutgoingHeartbeat);

        for (var beats = 1; beats <= 5; beats++)
        {
            await AdvanceAsync(TimeSpan.FromMilliseconds(149));
            await AdvanceAsync(TimeSpan.FromMilliseconds(1));
            await WaitUntilAsync(() => session.HeartbeatArrivals.Count >= beats, $"heart-beat {beats}");
        }

        // DISCONNECT follows on the socket any beat sent before it: a beat sent a millisecond early would be counted.
        await AdvanceAsync(TimeSpan.FromMilliseconds(149));
        await DisconnectGracefullyAsync(client, session);
        Assert.Equal(5, session.HeartbeatArrivals.Count);
    }

    [Fact]
    public async Task Server_silence_beyond_the_heart_beat_tolerance_fails_the_stream()
    {
        // sx = 100 ms, cy = 100 ms, tolerance 3: dead after 300 ms without data.
        var options = Options(o =>
        {
            o.HeartbeatReceiveInterval = TimeSpan.FromMilliseconds(100);
            o.HeartbeatTolerance = 3;
        });
        var (client, session) = await ConnectOnTheFakeClockAsync(options, serverHeartBeat: "100,0");

        await AdvanceAsync(TimeSpan.FromMilliseconds(299));
        Assert.Equal(StompConnectionState.Connected, client.State);
        await AdvanceAsync(TimeSpan.FromMilliseconds(1));
        var (_, end) = await DrainAsync(client);

        var error = Assert.IsType<StompConnectionLostException>(end);
        Assert.Equal(StompConnectionLostReason.HeartbeatTimeout, error.Reason);
        Assert.Equal(StompConnectionState.Failed, client.State);
        Assert.Null(await session.Ended.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Server_heart_beats_keep_the_connection_alive_until_they_stop()
    {
        // sx = 1 s, cy = 1 s, tolerance 3: dead after 3 s without data.
        var options = Options(o =>
        {
            o.HeartbeatReceiveInterval = TimeSpan.FromSeconds(1);
            o.HeartbeatTolerance = 3;
        });
        var (client, session) = await ConnectOnTheFakeClockAsync(options, serverHeartBeat: "1000,0");
        Assert.Equal(TimeSpan.FromSeconds(1), client.IncomingHeartbeat);

        // Ten seconds of beats, one a second. The client reads the clock for a beat a moment before it stores the
        // reading, so the watchdog may judge by the beat before: 2 s of silence, still within the tolerance.
        for (var second = 1; second <= 10; second++)
        {
            await AdvanceAsync(TimeSpan.FromSeconds(1));
            Assert.Equal(StompConnectionState.Connected, client.State);
            await SendHeartbeatAndWaitForItAsync(session);
        }

        await AdvanceAsync(TimeSpan.FromSeconds(1));
        Assert.Equal(StompConnectionState.Connected, client.State);
        await AdvanceAsync(TimeSpan.FromSeconds(2));
        var (_, end) = await DrainAsync(client);

        Assert.Equal(StompConnectionLostReason.HeartbeatTimeout, Assert.IsType<StompConnectionLostException>(end).Reason);
    }

    [Fact]
    public async Task A_socket_aborted_by_the_server_mid_stream_fails_the_stream_as_lost()
    {
        var (client, session) = await ConnectAsync();
        await client.SubscribeAsync("/exchange/waldur/events", "sub-1");
        await session.ExpectFrameAsync(StompCommands.Subscribe);
        await session.SendFrameAsync(StompCommands.Message, MessageHeaders("m-1"), "last words");
        await ReadOneAsync(client);

        session.Abort();

        var (messages, end) = await DrainAsync(client);
        Assert.Empty(messages);
        var error = Assert.IsType<StompConnectionLostException>(end);
        Assert.Equal(StompConnectionLostReason.TransportError, error.Reason);
        Assert.Equal(StompConnectionState.Failed, client.State);
    }

    [Fact]
    public async Task A_WebSocket_close_by_the_server_fails_the_stream_as_lost()
    {
        var (client, session) = await ConnectAsync();

        await session.CloseAsync(WebSocketCloseStatus.EndpointUnavailable, "node going down");

        var (_, end) = await DrainAsync(client);
        var error = Assert.IsType<StompConnectionLostException>(end);
        Assert.Equal(StompConnectionLostReason.ClosedByServer, error.Reason);
        Assert.Contains("node going down", error.Message, StringComparison.Ordinal);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, await session.Ended.WaitAsync(Timeout));
    }

    [Fact]
    public async Task Invalid_STOMP_from_the_server_fails_the_stream_as_a_protocol_error()
    {
        var (client, session) = await ConnectAsync();

        await session.SendRawAsync(Encoding.UTF8.GetBytes("MESSAGE\nbad\\tescape:x\n\n\0"));

        var (_, end) = await DrainAsync(client);
        var error = Assert.IsType<StompConnectionLostException>(end);
        Assert.Equal(StompConnectionLostReason.ProtocolError, error.Reason);
        Assert.IsType<StompProtocolException>(error.InnerException);
    }

    [Fact]
    public async Task Disconnect_sends_DISCONNECT_with_a_receipt_waits_for_it_and_closes_the_WebSocket()
    {
        var (client, session) = await ConnectAsync();

        var disconnecting = client.DisconnectAsync();
        var disconnect = await session.ExpectFrameAsync(StompCommands.Disconnect);
        var receiptId = disconnect.GetHeader("receipt");
        Assert.False(string.IsNullOrEmpty(receiptId));
        Assert.False(disconnecting.IsCompleted);

        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", receiptId!)]);
        await disconnecting.WaitAsync(Timeout);

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await session.Ended.WaitAsync(Timeout));
        Assert.Equal(StompConnectionState.Closed, client.State);
        var (messages, end) = await DrainAsync(client);
        Assert.Empty(messages);
        Assert.Null(end);
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.SendAsync("/queue/a", "x"));
    }

    [Fact]
    public async Task Disconnect_without_a_receipt_still_closes_after_the_timeout()
    {
        var logger = new CapturingLogger<StompConnection>();
        var (client, session) = await ConnectOnTheFakeClockAsync(
            Options(o => o.DisconnectTimeout = TimeSpan.FromMilliseconds(200)), serverHeartBeat: "0,0", logger);

        var disconnecting = Task.Run(() => client.DisconnectAsync());
        await session.ExpectFrameAsync(StompCommands.Disconnect);
        await WaitUntilSentAsync(logger, StompCommands.Disconnect);
        await AdvanceAsync(TimeSpan.FromMilliseconds(199));
        Assert.False(disconnecting.IsCompleted);
        await AdvanceAsync(TimeSpan.FromMilliseconds(1));

        await disconnecting.WaitAsync(Timeout);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await session.Ended.WaitAsync(Timeout));
        Assert.Equal(StompConnectionState.Closed, client.State);
    }

    [Fact]
    public async Task Dispose_of_a_connected_client_disconnects_gracefully()
    {
        var (client, session) = await ConnectAsync();

        var disposing = client.DisposeAsync().AsTask();
        var disconnect = await session.ExpectFrameAsync(StompCommands.Disconnect);
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", disconnect.GetHeader("receipt")!)]);
        await disposing.WaitAsync(Timeout);

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await session.Ended.WaitAsync(Timeout));
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.SendAsync("/queue/a", "x"));
    }

    [Fact]
    public async Task SEND_frames_carry_destination_content_type_headers_and_a_binary_body()
    {
        var (client, session) = await ConnectAsync();
        var body = new byte[] { 0xFF, 0, 0x10, 0 };

        await client.SendAsync("/queue/diag", body, "application/octet-stream", [new("x-trace", "t:1")]);
        await client.SendAsync("/queue/diag", "héllo");

        var binary = await session.ExpectFrameAsync(StompCommands.Send);
        Assert.Equal(
            [
                new("destination", "/queue/diag"),
                new("content-type", "application/octet-stream"),
                new("x-trace", "t:1"),
                new("content-length", "4"),
            ],
            binary.Headers);
        Assert.Equal(body, binary.Body.ToArray());
        var text = await session.ExpectFrameAsync(StompCommands.Send);
        Assert.Equal("text/plain;charset=utf-8", text.GetHeader("content-type"));
        Assert.Equal("héllo", text.GetBodyAsString());
        Assert.Equal("6", text.GetHeader("content-length"));
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task Concurrent_sends_are_written_one_frame_at_a_time()
    {
        var (client, session) = await ConnectAsync(Options(o => o.HeartbeatSendInterval = TimeSpan.FromMilliseconds(5)), "0,5");
        var bodies = Enumerable.Range(0, 40).Select(i => new string((char)('a' + (i % 26)), 20_000 + i)).ToArray();

        await Task.WhenAll(bodies.Select(body => Task.Run(() => client.SendAsync("/queue/load", body))));

        var received = new List<string>();
        for (var i = 0; i < bodies.Length; i++)
        {
            received.Add((await session.ExpectFrameAsync(StompCommands.Send)).GetBodyAsString());
        }

        Assert.Equal(bodies.Order(), received.Order());
        await DisconnectGracefullyAsync(client, session);
    }

    [Fact]
    public async Task ACK_and_NACK_use_the_message_ack_header()
    {
        var (client, session) = await ConnectAsync();
        await client.SubscribeAsync("/queue/a", "sub-1", "client-individual");
        await session.ExpectFrameAsync(StompCommands.Subscribe);
        await session.SendFrameAsync(StompCommands.Message, [.. MessageHeaders("m-1"), new("ack", "ack-7")]);
        await session.SendFrameAsync(StompCommands.Message, [.. MessageHeaders("m-2"), new("ack", "ack-8")]);
        await session.SendFrameAsync(StompCommands.Message, MessageHeaders("m-3"));
        var first = await ReadOneAsync(client);
        var second = await ReadOneAsync(client);
        var unackable = await ReadOneAsync(client);

        await client.AckAsync(first);
        await client.NackAsync(second);

        Assert.Equal([new("id", "ack-7")], (await session.ExpectFrameAsync(StompCommands.Ack)).Headers);
        Assert.Equal([new("id", "ack-8")], (await session.ExpectFrameAsync(StompCommands.Nack)).Headers);
        await Assert.ThrowsAsync<InvalidOperationException>(() => client.AckAsync(unackable));
        await DisconnectGracefullyAsync(client, session);
    }

    /// <summary>A fake clock that counts its readings: the client reads it to stamp data as it arrives.</summary>
    private sealed class ReadCountingClock : FakeTimeProvider
    {
        private int _reads;

        public int Reads => Volatile.Read(ref _reads);

        public override long GetTimestamp()
        {
            Interlocked.Increment(ref _reads);
            return base.GetTimestamp();
        }
    }
}
