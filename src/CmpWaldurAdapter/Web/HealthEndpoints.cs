using System.Text.Json;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// <c>/healthz</c>: the process is alive (no dependencies, so a slow upstream never gets it restarted).
/// <c>/readyz</c>: this replica can serve: its database answers and holds every migration this build knows. Upstreams are shared by every replica, so one being
/// down must not take them all out of the Service at once (keys, console, usage and widget need none of them, and chat
/// answers its own 503 with Retry-After). <c>/status</c>: the database, every upstream and the Waldur event queues, for monitoring.
/// Each names its checks, never their error details; a check with a reason for operators (a schema behind the build)
/// gives it under <c>reasons</c>.
/// </summary>
public static class HealthEndpoints
{
    public const string ReadyTag = "ready";

    public const string UpstreamTag = "upstream";

    /// <summary>The data key of a check's reason that is safe to show: fixed text, never an exception's.</summary>
    private const string ReasonKey = "reason";

    public static IServiceCollection AddAdapterHealthChecks(this IServiceCollection services)
    {
        services.AddSingleton<SchemaStatus>(); // one per process: it remembers a schema found up to date
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: [ReadyTag], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<SchemaHealthCheck>("schema", tags: [ReadyTag], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<WaldurHealthCheck>("waldur", tags: [UpstreamTag], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<EventsHealthCheck>("events", tags: [UpstreamTag]);
        return services;
    }

    public static void MapHealthEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteAsync });
        endpoints.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag), ResponseWriter = WriteAsync });
        endpoints.MapHealthChecks("/status", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag) || c.Tags.Contains(UpstreamTag), ResponseWriter = WriteAsync });
    }

    private static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        var body = new Dictionary<string, object>
        {
            ["status"] = report.Status.ToString().ToLowerInvariant(),
            ["checks"] = report.Entries.ToDictionary(e => e.Key, e => e.Value.Status.ToString().ToLowerInvariant()),
        };
        var reasons = report.Entries.Where(e => e.Value.Data.TryGetValue(ReasonKey, out var reason) && reason is string)
            .ToDictionary(e => e.Key, e => (string)e.Value.Data[ReasonKey]);
        if (reasons.Count > 0)
        {
            body["reasons"] = reasons;
        }

        return context.Response.WriteAsync(JsonSerializer.Serialize(body));
    }

    private sealed class DatabaseHealthCheck(IDbContextFactory<AdapterDbContext> dbs) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            return await db.Database.CanConnectAsync(cancellationToken) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy();
        }
    }

    /// <summary>A replica of a build whose migrations have not run (<c>db migrate</c>) stays out of the Service.</summary>
    private sealed class SchemaHealthCheck(SchemaStatus schema) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            var pending = await schema.PendingAsync(cancellationToken);
            if (pending.Count == 0)
            {
                return HealthCheckResult.Healthy();
            }

            var reason = $"The database schema is behind this build: {pending.Count} migration(s) not applied ({pending[^1]} the newest); run 'cmp-adapter db migrate'.";
            return HealthCheckResult.Unhealthy(reason, data: new Dictionary<string, object> { [ReasonKey] = reason });
        }
    }

    /// <summary>
    /// With events on, every queue (each served offering's order and resource queue) should be listened to; otherwise
    /// orders wait for the fallback poll (minutes, not seconds) while everything else looks fine. A replica's own
    /// connections: the same on every replica when the broker or the URL is wrong, so it stays out of readiness.
    /// </summary>
    private sealed class EventsHealthCheck(IOptionsMonitor<EventsOptions> events, ServedOfferings offerings, EventChannelStatus channel) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (!events.CurrentValue.Enabled)
            {
                return Task.FromResult(HealthCheckResult.Healthy());
            }

            var expected = offerings.Offerings.Count * EventChannelRegistrar.ObjectTypes.Count;
            var connected = channel.ConnectedQueues;
            if (connected >= expected)
            {
                return Task.FromResult(HealthCheckResult.Healthy());
            }

            var reason = $"{connected} of {expected} Waldur event queue(s) listened to; orders of the others are found only by the fallback poll.";
            var data = new Dictionary<string, object> { [ReasonKey] = reason };
            return Task.FromResult(connected == 0 ? HealthCheckResult.Unhealthy(reason, data: data) : HealthCheckResult.Degraded(reason, data: data));
        }
    }

    private sealed class WaldurHealthCheck(IWaldurApi waldur) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await waldur.GetCurrentUserAsync(cancellationToken);
                return HealthCheckResult.Healthy();
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy(exception.GetType().Name);
            }
        }
    }
}
