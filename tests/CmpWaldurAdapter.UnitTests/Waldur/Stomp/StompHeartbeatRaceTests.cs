using System.Diagnostics;
using System.Net.WebSockets;
using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

/// <summary>
/// The heart-beat loop racing the rest of the connection, with the interleaving forced by a fake clock: the heart-beat
/// loop runs only when the test advances it.
/// </summary>
public sealed class StompHeartbeatRaceTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly FakeTimeProvider _clock = new();
    private FakeStompServer _server = null!;
    private StompConnection? _client;

    public async Task InitializeAsync() => _server = await FakeStompServer.StartAsync();

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }
    }

    /// <summary>
    /// The watchdog ends the connection while the receive loop is handing over a MESSAGE it has already read: the
    /// loop's trace line for the message (after the read, before the hand-over) advances the clock past the heart-beat
    /// tolerance and waits until the watchdog has failed the connection.
    /// </summary>
    [Fact]
    public async Task A_message_read_as_the_heart_beat_timeout_fires_is_delivered_before_the_timeout()
    {
        StompConnection? client = null;
        var logger = new HookLogger(message =>
        {
            if (message.StartsWith("Received STOMP MESSAGE", StringComparison.Ordinal))
            {
                // dead after 2 × 1 s of silence
                _clock.Advance(TimeSpan.FromSeconds(3));
                WaitUntil(() => client!.State == StompConnectionState.Failed);
            }
        });
        client = _client = new StompConnection(logger, _clock);
        var options = new StompConnectOptions
        {
            Login = "guest",
            Passcode = "guest",
            HeartbeatSendInterval = TimeSpan.Zero,
            HeartbeatReceiveInterval = TimeSpan.FromSeconds(1),
            HeartbeatTolerance = 2,
        };

        // Off xUnit's synchronization context, so the watchdog can run while the receive loop waits in the hook.
        var connecting = Task.Run(() => client.ConnectAsync(_server.Uri, options));
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);
        await session.SendConnectedAsync(heartBeat: "1000,0");
        await connecting.WaitAsync(Timeout);

        await session.SendFrameAsync(StompCommands.Message, [new("destination", "/queue/q"), new("subscription", "s"), new("message-id", "m-1")], "order");

        var delivered = new List<string?>();
        using var timeout = new CancellationTokenSource(Timeout);
        var end = await Record.ExceptionAsync(async () =>
        {
            await foreach (var message in client.ReadMessagesAsync(timeout.Token))
            {
                delivered.Add(message.MessageId);
            }
        });

        Assert.Equal(["m-1"], delivered);
        Assert.Equal(StompConnectionLostReason.HeartbeatTimeout, Assert.IsType<StompConnectionLostException>(end).Reason);
    }

    // In the tests of a graceful close below, the clock advances off xUnit's synchronization context, where the
    // heart-beat loop resumes inline: whatever it does with the time given, it has done when Advance returns.

    [Fact]
    public async Task A_heart_beat_due_while_DISCONNECT_awaits_its_RECEIPT_is_not_sent()
    {
        var (client, session) = await ConnectAsync(
            new StompConnectOptions { HeartbeatSendInterval = TimeSpan.FromSeconds(1) }, serverHeartBeat: "0,1000");

        var disconnecting = Task.Run(() => client.DisconnectAsync());
        var disconnect = await session.ExpectFrameAsync(StompCommands.Disconnect);
        await Task.Run(() => _clock.Advance(TimeSpan.FromSeconds(2)));
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", disconnect.GetHeader("receipt")!)]);
        await disconnecting.WaitAsync(Timeout);

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await session.Ended.WaitAsync(Timeout));
        Assert.Empty(session.HeartbeatArrivals);
        Assert.Equal(StompConnectionState.Closed, client.State);
    }

    [Fact]
    public async Task A_heart_beat_due_after_the_close_frame_went_out_does_not_cut_the_close_short()
    {
        var (client, session) = await ConnectAsync(
            new StompConnectOptions { HeartbeatSendInterval = TimeSpan.FromSeconds(1) }, serverHeartBeat: "0,1000");
        session.HoldCloseAnswer();

        var disconnecting = Task.Run(() => client.DisconnectAsync());
        var disconnect = await session.ExpectFrameAsync(StompCommands.Disconnect);
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", disconnect.GetHeader("receipt")!)]);
        await session.CloseReceived.WaitAsync(Timeout);
        await Task.Run(() => _clock.Advance(TimeSpan.FromSeconds(2)));

        // A beat tried on the half-closed socket would fail, and the failure abort the socket before the server answers.
        Assert.Equal(StompConnectionState.Disconnecting, client.State);
        await AssertTheCloseCompletesAsync(client, session, disconnecting);
    }

    [Fact]
    public async Task Server_silence_while_DISCONNECT_awaits_its_RECEIPT_does_not_cut_the_close_short()
    {
        var (client, session) = await ConnectAsync(
            new StompConnectOptions { HeartbeatReceiveInterval = TimeSpan.FromSeconds(1), HeartbeatTolerance = 2 },
            serverHeartBeat: "1000,0");

        var disconnecting = Task.Run(() => client.DisconnectAsync());
        var disconnect = await session.ExpectFrameAsync(StompCommands.Disconnect);
        await Task.Run(() => _clock.Advance(TimeSpan.FromSeconds(3)));

        // DisconnectTimeout bounds the close: a watchdog still judging the silence would abort the socket, leaving
        // DISCONNECT without its RECEIPT and the WebSocket without a close frame.
        Assert.Equal(StompConnectionState.Disconnecting, client.State);
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", disconnect.GetHeader("receipt")!)]);
        await AssertTheCloseCompletesAsync(client, session, disconnecting);
    }

    private async Task<(StompConnection Client, FakeStompSession Session)> ConnectAsync(
        StompConnectOptions options, string serverHeartBeat)
    {
        options.Login = "guest";
        options.Passcode = "guest";

        // Longer than any advance of the clock: only the server ends the close.
        options.DisconnectTimeout = TimeSpan.FromMinutes(1);
        var client = _client = new StompConnection(timeProvider: _clock);

        // Off xUnit's synchronization context, so the heart-beat loop does not resume on it.
        var connecting = Task.Run(() => client.ConnectAsync(_server.Uri, options));
        var session = await _server.AcceptAsync();
        await session.ExpectFrameAsync(StompCommands.Connect);
        await session.SendConnectedAsync(serverHeartBeat);
        await connecting.WaitAsync(Timeout);
        return (client, session);
    }

    private static async Task AssertTheCloseCompletesAsync(StompConnection client, FakeStompSession session, Task disconnecting)
    {
        session.AnswerClose();
        await disconnecting.WaitAsync(Timeout);

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await session.Ended.WaitAsync(Timeout));
        Assert.Equal(StompConnectionState.Closed, client.State);
        using var timeout = new CancellationTokenSource(Timeout);
        Assert.Empty(await client.ReadMessagesAsync(timeout.Token).ToListAsync(timeout.Token));
    }

    private static void WaitUntil(Func<bool> condition)
    {
        var waited = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(waited.Elapsed < Timeout, "the heart-beat watchdog did not fail the connection");
            Thread.Sleep(1);
        }
    }

    private sealed class HookLogger(Action<string> onMessage) : ILogger<StompConnection>
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            onMessage(formatter(state, exception));
    }
}
