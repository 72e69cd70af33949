using System.Diagnostics;
using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

/// <summary>
/// The heart-beat watchdog ending the connection while the receive loop is handing over a MESSAGE it has
/// already read. The interleaving is forced: the loop's trace line for the message (after the read, before the
/// hand-over) advances a fake clock past the heart-beat tolerance and waits until the watchdog has failed the
/// connection.
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
