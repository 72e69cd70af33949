using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;

namespace CmpWaldurAdapter.Events;

/// <summary>Waldur's event channel for site agents: STOMP over WebSocket (configuration section <c>Events</c>).</summary>
public sealed class EventsOptions : IValidatableObject
{
    public const string SectionName = "Events";

    /// <summary>Off: polling-only mode, no broker needed.</summary>
    public bool Enabled { get; set; }

    /// <summary>RabbitMQ web-STOMP endpoint, e.g. <c>wss://waldur.example.org/rmqws-stomp</c>.</summary>
    [AbsoluteUri("ws", "wss")]
    public Uri? WebSocketUrl { get; set; }

    /// <summary>Heart-beat interval both ways; RabbitMQ drops sockets without them.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan Heartbeat { get; set; } = TimeSpan.FromSeconds(10);

    [Range(typeof(TimeSpan), "00:00:00.001", "01:00:00")]
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>A connection that stayed up this long resets the reconnect backoff.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan StableAfter { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Reconnect backoff: 1 s doubling to this, with up to 25 % jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan MaxReconnectDelay { get; set; } = TimeSpan.FromMinutes(2);

    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan InitialReconnectDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// After this many connection attempts in a row that never got to listen, the queue is registered with Waldur
    /// again: Waldur may have dropped the event subscription or its queue, and reconnecting to it would never work.
    /// </summary>
    [Range(1, 1000)]
    public int ReregisterAfterFailures { get; set; } = 3;

    /// <summary>
    /// With events on, how often pending orders are still polled: an event the broker lost, or an event subscription
    /// Waldur dropped, then delays an order by this much instead of until the stuck-order refeed (Orders:StuckAfter).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan FallbackPollInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often paused and downscaled flags are re-read for every subscription (events can be lost).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ResourceSyncInterval { get; set; } = TimeSpan.FromMinutes(5);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // Without an address the listener could only give up, and orders would wait for the fallback poll (minutes).
        if (Enabled && WebSocketUrl is null)
        {
            yield return new ValidationResult("Events:WebSocketUrl must be set when Events:Enabled is true (or set Events:Enabled to false to find orders by polling only).", [nameof(WebSocketUrl), nameof(Enabled)]);
        }

        // The backoff is capped at the maximum: one below the initial delay would silently replace it.
        if (MaxReconnectDelay < InitialReconnectDelay)
        {
            yield return new ValidationResult("Events:MaxReconnectDelay must be at least Events:InitialReconnectDelay.", [nameof(MaxReconnectDelay), nameof(InitialReconnectDelay)]);
        }
    }
}
