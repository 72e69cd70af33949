using Prometheus;

namespace CmpWaldurAdapter.Observability;

/// <summary>Where <c>/metrics</c> is answered (configuration section <c>Metrics</c>).</summary>
public static class MetricsPort
{
    /// <summary>
    /// With <c>Metrics:Port</c> set, <c>/metrics</c> answers only on connections to that port of the server (list it in
    /// <c>--urls</c> too), so a public ingress in front of the main port cannot serve it: its counters name offerings
    /// and show traffic, credits and upstream failures. And that port answers nothing else: it is opened to scrapers
    /// (a network policy's <c>metricsFrom</c>), which must not reach the chat, try and widget endpoints past the ingress,
    /// nor set X-Forwarded-For from inside a trusted proxy network. The local port decides, never the Host header.
    /// </summary>
    public static WebApplication UseMetricsPort(this WebApplication app)
    {
        if (app.Configuration.GetValue<int?>("Metrics:Port") is not { } port)
        {
            return app;
        }

        app.Use((http, next) =>
        {
            var metrics = http.Request.Path.StartsWithSegments("/metrics", StringComparison.OrdinalIgnoreCase);
            if (metrics != (http.Connection.LocalPort == port))
            {
                http.Response.StatusCode = StatusCodes.Status404NotFound;
                return Task.CompletedTask;
            }

            return next(http);
        });
        return app;
    }
}

/// <summary>
/// The adapter's metrics, served at <c>/metrics</c> in Prometheus text format. Each host has its own
/// registry, so hosts sharing a process (tests, the sandbox) never mix their counts.
/// </summary>
public sealed class AdapterMetrics
{
    public AdapterMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        OrdersProcessed = factory.CreateCounter("cmp_orders_processed_total", "Orders looked at, by type and outcome.", "type", "outcome");
        OrderEventToDone = factory.CreateHistogram("cmp_order_event_to_done_seconds", "From the first announcement of an order (event or poll) to done in Waldur.",
            new HistogramConfiguration { Buckets = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800] });
        EventChannelConnected = factory.CreateGauge("cmp_stomp_connected_queues", "Waldur event queues currently subscribed.");
        EventReconnects = factory.CreateCounter("cmp_stomp_reconnects_total", "Reconnects of the Waldur event channel.");
        EventMessages = factory.CreateCounter("cmp_stomp_messages_total", "Messages received from Waldur's event channel, by object type.", "object_type");
        ChatRequests = factory.CreateCounter("cmp_chat_requests_total", "Chat API requests, by HTTP status.", "status");
        ChatDuration = factory.CreateHistogram("cmp_chat_request_duration_seconds", "Chat API request duration (to the last byte), by HTTP status.",
            new HistogramConfiguration { LabelNames = ["status"], Buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        CreditsCharged = factory.CreateCounter("cmp_credits_charged_total", "Credits charged, by Waldur component.", "component");
        UpstreamRequests = factory.CreateCounter("cmp_upstream_requests_total", "Requests to Waldur, Langflow and RAGFlow (each attempt), by upstream and outcome.", "upstream", "outcome");
        UpstreamDuration = factory.CreateHistogram("cmp_upstream_request_duration_seconds", "Duration of each upstream attempt, by upstream.",
            new HistogramConfiguration { LabelNames = ["upstream"], Buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        UsageReportsSent = factory.CreateCounter("cmp_usage_reports_sent_total", "set_usage calls sent to Waldur.");
        AgentRuns = factory.CreateCounter("cmp_agent_runs_total", "Agent answers given, by offering slug and channel (api, console, widget, try).", "offering", "channel");
    }

    public CollectorRegistry Registry { get; }

    public Counter OrdersProcessed { get; }

    public Histogram OrderEventToDone { get; }

    public Gauge EventChannelConnected { get; }

    public Counter EventReconnects { get; }

    public Counter EventMessages { get; }

    public Counter ChatRequests { get; }

    public Histogram ChatDuration { get; }

    public Counter CreditsCharged { get; }

    public Counter UpstreamRequests { get; }

    public Histogram UpstreamDuration { get; }

    public Counter UsageReportsSent { get; }

    /// <summary>Counts one chat API request and its duration under its HTTP status (called by the chat endpoints).</summary>
    public void ObserveChatRequest(int statusCode, TimeSpan duration)
    {
        var status = statusCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        ChatRequests.WithLabels(status).Inc();
        ChatDuration.WithLabels(status).Observe(duration.TotalSeconds);
    }

    /// <summary>The marketplace's run count per offering (<see cref="RunChannels"/> summed).</summary>
    public Counter AgentRuns { get; }

    public static readonly IReadOnlyList<string> RunChannels = ["api", "console", "widget", "try"];

    public long RunsOf(string offering) => (long)RunChannels.Sum(channel => AgentRuns.WithLabels(offering, channel).Value);
}
