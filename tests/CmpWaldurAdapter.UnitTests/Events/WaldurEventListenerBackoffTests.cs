using System.Collections.Concurrent;
using System.Reflection;
using System.Threading.Channels;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.UnitTests.Waldur.Stomp;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.UnitTests.Events;

/// <summary>
/// The listener's one backoff per queue, on a fake clock: every wait it asks for is recorded, so the test
/// sees the exact delays without sleeping. Waldur is a stub that fails registrations on cue; the broker is
/// the in-process STOMP server, which refuses or accepts each login as the test says.
/// </summary>
public sealed class WaldurEventListenerBackoffTests : IAsyncLifetime
{
    private static readonly TimeSpan InitialDelay = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan MaxDelay = TimeSpan.FromMinutes(10);
    private static readonly TimeSpan StableAfter = TimeSpan.FromMinutes(30);
    private const double MaxJitter = 0.25;

    private readonly RecordingClock _clock = new();
    private readonly WaldurStub _waldur = new();
    private readonly ConcurrentDictionary<string, Channel<FakeStompSession>> _sessionsByLogin = new();
    private readonly CancellationTokenSource _routing = new();
    private readonly EventChannelStatus _status = new();
    private FakeStompServer _broker = null!;
    private EventChannelRegistrar _registrar = null!;
    private WaldurEventListener _listener = null!;
    private Task _router = Task.CompletedTask;

    public async Task InitializeAsync()
    {
        _broker = await FakeStompServer.StartAsync();
        _router = RouteSessionsAsync(_routing.Token);
        _listener = NewListener();
    }

    public async Task DisposeAsync()
    {
        // Broker first: a connection still up would wait for its DISCONNECT receipt on the fake clock.
        await _routing.CancelAsync();
        await _broker.DisposeAsync();
        await _router.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _listener.StopAsync(CancellationToken.None);
        _listener.Dispose();
        _registrar.Dispose();
        _routing.Dispose();
    }

    [Fact]
    public async Task Failed_registrations_and_connections_wait_longer_each_time_up_to_the_cap_and_registering_again_keeps_the_wait()
    {
        _waldur.FailRegistrations(ObservableObjectTypeEnum.Resource, 2);
        await StartWithTheOrderQueueListeningAsync();

        await AssertNextWaitAsync(1, InitialDelay, registrations: 1);
        await AssertNextWaitAsync(2, InitialDelay * 2, registrations: 2);
        await RefuseNextLoginAsync();
        await AssertNextWaitAsync(3, InitialDelay * 4, registrations: 3);
        await RefuseNextLoginAsync();
        await AssertNextWaitAsync(4, MaxDelay, registrations: 3);

        // The third refusal in a row sends the queue back to Waldur, after the wait and with the backoff it had.
        _waldur.FailRegistrations(ObservableObjectTypeEnum.Resource, 1);
        await RefuseNextLoginAsync();
        await AssertNextWaitAsync(5, MaxDelay, registrations: 3);
        await AssertNextWaitAsync(6, MaxDelay, registrations: 4);
    }

    [Fact]
    public async Task Only_a_connection_that_stayed_up_for_the_stable_period_resets_the_wait()
    {
        await StartWithTheOrderQueueListeningAsync();
        await RefuseNextLoginAsync();
        await AssertNextWaitAsync(1, InitialDelay, registrations: 1);
        await RefuseNextLoginAsync();
        await AssertNextWaitAsync(2, InitialDelay * 2, registrations: 1);

        var shortLived = await AcceptNextLoginAsync(ResourceLogin);
        _clock.Advance(StableAfter - TimeSpan.FromSeconds(1));
        shortLived.Abort();
        await AssertNextWaitAsync(3, InitialDelay * 4, registrations: 1);

        var stable = await AcceptNextLoginAsync(ResourceLogin);
        _clock.Advance(StableAfter);
        stable.Abort();
        await AssertNextWaitAsync(4, InitialDelay, registrations: 1);

        await RefuseNextLoginAsync();
        await AssertNextWaitAsync(5, InitialDelay * 2, registrations: 1);
    }

    private static string ResourceLogin => WaldurStub.SubscriptionOf(ObservableObjectTypeEnum.Resource).ToString("N");

    private static string OrderLogin => WaldurStub.SubscriptionOf(ObservableObjectTypeEnum.Order).ToString("N");

    /// <summary>The order queue stays connected throughout, so every backoff wait recorded is the resource queue's.</summary>
    private async Task StartWithTheOrderQueueListeningAsync()
    {
        await _listener.StartAsync(CancellationToken.None);
        await AcceptNextLoginAsync(OrderLogin);
    }

    /// <summary>
    /// Waits (in real time, briefly) for the listener to park on its next backoff wait, checks the wait against
    /// the configured delay and jitter and how often it asked Waldur so far, then lets the fake clock run it out.
    /// </summary>
    private async Task AssertNextWaitAsync(int number, TimeSpan expectedBase, int registrations)
    {
        var wait = await _clock.NextBackoffWaitAsync(number);
        Assert.InRange(wait, expectedBase, expectedBase * (1 + MaxJitter));
        Assert.Equal(registrations, _waldur.Registrations(ObservableObjectTypeEnum.Resource));
        _clock.Advance(wait);
    }

    private async Task RefuseNextLoginAsync()
    {
        var session = await NextSessionAsync(ResourceLogin);
        await session.SendFrameAsync(StompCommands.Error, [new("message", "access refused")]);
    }

    private async Task<FakeStompSession> AcceptNextLoginAsync(string login)
    {
        var session = await NextSessionAsync(login);
        await session.SendConnectedAsync();
        var subscribe = await session.ExpectFrameAsync(StompCommands.Subscribe);
        await session.SendFrameAsync(StompCommands.Receipt, [new("receipt-id", subscribe.GetHeader("receipt")!)]);
        await Eventually.TrueAsync(() => _status.ConnectedQueues == (login == OrderLogin ? 1 : 2), FakeStompServer.DefaultTimeout, "the queue is listened to");
        return session;
    }

    private async Task<FakeStompSession> NextSessionAsync(string login)
    {
        using var timeout = new CancellationTokenSource(FakeStompServer.DefaultTimeout);
        return await SessionsOf(login).Reader.ReadAsync(timeout.Token);
    }

    private Channel<FakeStompSession> SessionsOf(string login) =>
        _sessionsByLogin.GetOrAdd(login, _ => Channel.CreateUnbounded<FakeStompSession>());

    /// <summary>Both queues log in to the one broker; the CONNECT frame's login tells which queue a session is.</summary>
    private async Task RouteSessionsAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var session = await _broker.AcceptAsync().WaitAsync(cancellationToken);
                var connect = await session.ExpectFrameAsync(StompCommands.Connect);
                SessionsOf(connect.GetHeader("login")!).Writer.TryWrite(session);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // No one connected within the accept timeout; keep waiting.
            }
        }
    }

    private WaldurEventListener NewListener()
    {
        var events = Monitor(new EventsOptions
        {
            Enabled = true,
            WebSocketUrl = _broker.Uri,
            Heartbeat = TimeSpan.Zero,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            InitialReconnectDelay = InitialDelay,
            MaxReconnectDelay = MaxDelay,
            StableAfter = StableAfter,
            ReregisterAfterFailures = 3,
        });
        var waldurOptions = Monitor(new WaldurOptions { Token = "token" });
        var api = _waldur.Api;
        var catalog = new ServedOfferings(api, Monitor(new List<OfferingBinding> { new() { Uuid = WaldurStub.Offering, Slug = "agent" } }), _clock);

        // The database is never reached: the order queue's catch-up poll fails at the Waldur stub first, and no
        // message is ever sent to either queue.
        var inbox = new OrderInbox(null!, _clock, Monitor(new OrdersOptions()));
        var poller = new OrderPoller(api, catalog, inbox, _clock, waldurOptions, Monitor(new OrdersOptions()), NullLogger<OrderPoller>.Instance);
        _registrar = new EventChannelRegistrar(api, _clock);
        return new WaldurEventListener(
            _registrar,
            catalog,
            inbox,
            poller,
            null!,
            _status,
            new AdapterMetrics(),
            events,
            waldurOptions,
            _clock,
            NullLoggerFactory.Instance);
    }

    private static IOptionsMonitor<T> Monitor<T>(T value) => new FixedOptionsMonitor<T>(value);

    private sealed class FixedOptionsMonitor<T>(T value) : IOptionsMonitor<T>
    {
        public T CurrentValue => value;

        public T Get(string? name) => value;

        public IDisposable? OnChange(Action<T, string?> listener) => null;
    }

    /// <summary>A fake clock that notes every timer long enough to be a backoff wait (the STOMP timeouts are seconds).</summary>
    private sealed class RecordingClock : FakeTimeProvider
    {
        private static readonly TimeSpan ShortestBackoffWait = TimeSpan.FromMinutes(1);
        private readonly List<TimeSpan> _backoffWaits = [];

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            if (dueTime >= ShortestBackoffWait && dueTime != Timeout.InfiniteTimeSpan)
            {
                lock (_backoffWaits)
                {
                    _backoffWaits.Add(dueTime);
                }
            }

            return base.CreateTimer(callback, state, dueTime, period);
        }

        public async Task<TimeSpan> NextBackoffWaitAsync(int number)
        {
            await Eventually.TrueAsync(() => Count >= number, FakeStompServer.DefaultTimeout, $"backoff wait {number}");
            lock (_backoffWaits)
            {
                Assert.Equal(number, _backoffWaits.Count);
                return _backoffWaits[number - 1];
            }
        }

        private int Count
        {
            get
            {
                lock (_backoffWaits)
                {
                    return _backoffWaits.Count;
                }
            }
        }
    }

    /// <summary>Waldur's site-agent registration calls; anything else the listener asks fails.</summary>
    internal sealed class WaldurStub
    {
        public static readonly Guid Offering = Guid.Parse("6f1c2b0e-0c55-4c1e-9a4e-3d2f1b0a9c01");
        private static readonly Guid Identity = Guid.Parse("0b8e5a8c-6a0f-4a49-9a52-2f8d7c9b1e02");
        private static readonly Guid User = Guid.Parse("a3d4e5f6-1b2c-4d3e-8f9a-0b1c2d3e4f03");

        private readonly ConcurrentDictionary<ObservableObjectTypeEnum, int> _registrations = new();
        private readonly ConcurrentDictionary<ObservableObjectTypeEnum, int> _failuresToCome = new();

        public WaldurStub()
        {
            Api = DispatchProxy.Create<IWaldurApi, WaldurApiProxy>();
            ((WaldurApiProxy)(object)Api).Stub = this;
        }

        public IWaldurApi Api { get; }

        public static Guid SubscriptionOf(ObservableObjectTypeEnum objectType) =>
            objectType == ObservableObjectTypeEnum.Order
                ? Guid.Parse("5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a04")
                : Guid.Parse("7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c05");

        public int Registrations(ObservableObjectTypeEnum objectType) => _registrations.GetValueOrDefault(objectType);

        public void FailRegistrations(ObservableObjectTypeEnum objectType, int times) => _failuresToCome[objectType] = times;

        internal object? Answer(string method, object?[] arguments) => method switch
        {
            nameof(IWaldurApi.ListAgentIdentitiesAsync) => Task.FromResult(new List<AgentIdentity>
            {
                new() { Uuid = Identity, Offering = Offering, Name = EventChannelRegistrar.IdentityName(Offering) },
            }),
            nameof(IWaldurApi.RegisterEventSubscriptionAsync) => Register(((AgentEventSubscriptionCreateRequest)arguments[1]!).Observable_object_type),
            nameof(IWaldurApi.CreateQueueAsync) => Task.FromResult(new EventSubscriptionQueue
            {
                Queue_name = $"subscription_{(Guid)arguments[0]!:N}_offering_{Offering:N}",
                Vhost = User.ToString("N"),
            }),
            _ => throw new HttpRequestException($"The Waldur stub does not answer {method}."),
        };

        private Task<EventSubscription> Register(ObservableObjectTypeEnum objectType)
        {
            _registrations.AddOrUpdate(objectType, 1, (_, count) => count + 1);
            if (_failuresToCome.GetValueOrDefault(objectType) > 0)
            {
                _failuresToCome.AddOrUpdate(objectType, 0, (_, left) => left - 1);
                return Task.FromException<EventSubscription>(new HttpRequestException("Waldur answered 503."));
            }

            return Task.FromResult(new EventSubscription { Uuid = SubscriptionOf(objectType), User_uuid = User });
        }
    }

    /// <summary>Routes <see cref="IWaldurApi"/> calls to <see cref="WaldurStub"/>; DispatchProxy needs an unsealed type.</summary>
    public class WaldurApiProxy : DispatchProxy
    {
        internal WaldurStub Stub { get; set; } = null!;

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args) =>
            Stub.Answer(targetMethod!.Name, args ?? []);
    }
}
