using System.Text.Json;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using CmpWaldurAdapter.Waldur.Events.Stomp;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Events;

/// <summary>What the event channel is doing, for health and metrics.</summary>
public sealed class EventChannelStatus
{
    private int _connected;
    private long _reconnects;
    private long _messages;

    public int ConnectedQueues => Volatile.Read(ref _connected);

    public long Reconnects => Interlocked.Read(ref _reconnects);

    public long Messages => Interlocked.Read(ref _messages);

    internal void Connected() => Interlocked.Increment(ref _connected);

    internal void Disconnected() => Interlocked.Decrement(ref _connected);

    internal void Reconnecting() => Interlocked.Increment(ref _reconnects);

    internal void Received() => Interlocked.Increment(ref _messages);
}

/// <summary>
/// Listens to Waldur's event queues over STOMP (one connection per queue) and turns messages into
/// inbox entries. Messages are only triggers: orders are always re-read over REST. A message is
/// acknowledged after it is safely in the inbox, so a crash before that gets it redelivered; after
/// every (re)connect a poll of the queue's offering covers anything sent while the connection was down.
/// Each queue registers and reconnects on its own: an offering Waldur refuses keeps no other offering's
/// events away, and a queue that cannot be listened to any more is registered again.
/// </summary>
public sealed class WaldurEventListener(
    EventChannelRegistrar registrar,
    ServedOfferings catalog,
    OrderInbox inbox,
    OrderPoller poller,
    ResourceStateSync resources,
    EventChannelStatus status,
    AdapterMetrics metrics,
    IOptionsMonitor<EventsOptions> options,
    IOptionsMonitor<WaldurOptions> waldurOptions,
    TimeProvider clock,
    ILoggerFactory loggers) : BackgroundService
{
    private readonly ILogger _logger = loggers.CreateLogger<WaldurEventListener>();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var settings = options.CurrentValue;
        if (!settings.Enabled)
        {
            _logger.LogInformation("Events are off: orders are found by polling only");
            return;
        }

        if (settings.WebSocketUrl is null)
        {
            _logger.LogError("Events:Enabled is set but Events:WebSocketUrl is not; orders are found by polling only");
            return;
        }

        await Task.WhenAll(catalog.Offerings.SelectMany(offering => EventChannelRegistrar.ObjectTypes.Select(objectType => ListenAsync(settings.WebSocketUrl, offering, objectType, stoppingToken))));
    }

    private async Task ListenAsync(Uri endpoint, OfferingBinding offering, ObservableObjectTypeEnum objectType, CancellationToken stoppingToken)
    {
        // One backoff for the queue's whole life: registering again after failed connections waits like a reconnect
        // does, so a broker outage does not have every queue ask Waldur again every few seconds.
        var backoff = NewBackoff();
        while (await RegisterAsync(offering, objectType, backoff, stoppingToken) is { } queue)
        {
            await ConsumeAsync(endpoint, queue, backoff, stoppingToken);
        }
    }

    private async Task<EventQueueBinding?> RegisterAsync(OfferingBinding offering, ObservableObjectTypeEnum objectType, StompReconnectBackoff backoff, CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var queue = await registrar.RegisterAsync(offering, objectType, stoppingToken);
                _logger.LogInformation("Registered the Waldur {ObjectType} event queue of offering {Offering}", queue.ObjectType, offering.Slug);
                return queue;
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                _logger.LogWarning(exception, "Could not register the {ObjectType} event queue of offering {Offering} with Waldur; retrying", WaldurEnums.ToWire(objectType), offering.Slug);
                await ((Task)backoff.DelayAsync(stoppingToken)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        return null;
    }

    /// <summary>Listens to one queue, reconnecting with backoff; returns when the queue should be registered again.</summary>
    private async Task ConsumeAsync(Uri endpoint, EventQueueBinding queue, StompReconnectBackoff backoff, CancellationToken stoppingToken)
    {
        using var scope = _logger.BeginScope(new Dictionary<string, object> { ["Queue"] = queue.QueueName });
        var first = true;
        var failures = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            var connected = false;
            try
            {
                if (!first)
                {
                    status.Reconnecting();
                    metrics.EventReconnects.Inc();
                }

                first = false;
                var settings = options.CurrentValue;
                await using var connection = new StompConnection(loggers.CreateLogger<StompConnection>(), clock);
                await connection.ConnectAsync(endpoint, new StompConnectOptions
                {
                    Host = queue.VirtualHost,
                    Login = queue.SubscriptionUuid.ToString("N"),
                    Passcode = waldurOptions.CurrentValue.Token,
                    HeartbeatSendInterval = settings.Heartbeat,
                    HeartbeatReceiveInterval = settings.Heartbeat,
                    ConnectTimeout = settings.ConnectTimeout,
                }, stoppingToken);
                // /amq/queue/ uses the queue Waldur declared; /queue/ would redeclare it with other arguments.
                await connection.SubscribeAsync($"/amq/queue/{queue.QueueName}", queue.QueueName, ack: "client-individual", awaitReceipt: true, cancellationToken: stoppingToken);
                connected = true;
                failures = 0;
                status.Connected();
                metrics.EventChannelConnected.Inc();
                backoff.MarkConnected();
                _logger.LogInformation("Listening to Waldur {ObjectType} events", queue.ObjectType);
                if (queue.ObjectType == "order")
                {
                    _ = CatchUpAsync(queue.OfferingUuid, stoppingToken);
                }

                await foreach (var message in connection.ReadMessagesAsync(stoppingToken))
                {
                    status.Received();
                    metrics.EventMessages.WithLabels(queue.ObjectType).Inc();
                    await HandleAsync(queue, message, stoppingToken);
                    await connection.AckAsync(message, cancellationToken: stoppingToken);
                }

                _logger.LogWarning("The event connection was closed; reconnecting");
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                _logger.LogWarning("The event connection failed ({Reason}); reconnecting", exception.Message);
            }
            finally
            {
                if (connected)
                {
                    status.Disconnected();
                    metrics.EventChannelConnected.Dec();
                }
            }

            await ((Task)backoff.DelayAsync(stoppingToken)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!connected && ++failures >= Math.Max(1, options.CurrentValue.ReregisterAfterFailures))
            {
                // The broker refusing the login or the queue again and again: Waldur may have dropped the subscription.
                _logger.LogWarning("The {ObjectType} event queue could not be listened to {Failures} times in a row; registering it with Waldur again", queue.ObjectType, failures);
                return;
            }
        }
    }

    private async Task HandleAsync(EventQueueBinding queue, StompMessage message, CancellationToken cancellationToken)
    {
        EventPayload? payload;
        try
        {
            payload = JsonSerializer.Deserialize<EventPayload>(message.Body.Span, PayloadJson);
        }
        catch (JsonException)
        {
            _logger.LogWarning("Ignoring an event that is not JSON on {Queue}", queue.QueueName);
            return;
        }

        switch (queue.ObjectType)
        {
            case "order" when Guid.TryParse(payload?.OrderUuid, out var order):
                if (WaldurOrderStates.IsActionable(payload!.OrderState))
                {
                    await inbox.EnqueueAsync(order, payload.OrderState, "event", refeed: false, cancellationToken);
                }

                break;
            case "resource" when Guid.TryParse(payload?.ResourceUuid, out var resource):
                try
                {
                    await resources.SyncAsync(resource, cancellationToken);
                }
                catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
                {
                    // The periodic sweep will pick the change up; the channel must keep flowing.
                    _logger.LogWarning(exception, "Could not refresh resource {ResourceUuid} after its event", resource);
                }

                break;
            default:
                _logger.LogWarning("Ignoring an event without the expected fields on {Queue}", queue.QueueName);
                break;
        }
    }

    private async Task CatchUpAsync(Guid offeringUuid, CancellationToken cancellationToken)
    {
        try
        {
            await poller.PollAsync(cancellationToken, offeringUuid);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning(exception, "Catch-up poll after connecting failed; the stuck-order job will cover it");
        }
    }

    private StompReconnectBackoff NewBackoff()
    {
        var settings = options.CurrentValue;
        return new StompReconnectBackoff(new StompReconnectBackoffOptions
        {
            InitialDelay = settings.InitialReconnectDelay,
            MaxDelay = settings.MaxReconnectDelay,
            StablePeriod = settings.StableAfter,
        }, clock);
    }

    private static readonly JsonSerializerOptions PayloadJson = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>Waldur sends UUIDs as 32 hex digits; strings keep both spellings parseable.</summary>
    private sealed record EventPayload(string? OrderUuid, string? OrderState, string? ResourceUuid);
}
