using System.Text.Json;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// <c>/healthz</c>: the process is alive (no dependencies, so a slow upstream never gets it restarted).
/// <c>/readyz</c>: this replica can serve: its database answers. Upstreams are shared by every replica, so one being
/// down must not take them all out of the Service at once (keys, console, usage and widget need none of them, and chat
/// answers its own 503 with Retry-After). <c>/status</c>: the database and every upstream, for monitoring.
/// Each names its checks, never their error details.
/// </summary>
public static class HealthEndpoints
{
    public const string ReadyTag = "ready";

    public const string UpstreamTag = "upstream";

    public static IServiceCollection AddAdapterHealthChecks(this IServiceCollection services)
    {
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", tags: [ReadyTag], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<WaldurHealthCheck>("waldur", tags: [UpstreamTag], timeout: TimeSpan.FromSeconds(5));
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
        var body = new
        {
            status = report.Status.ToString().ToLowerInvariant(),
            checks = report.Entries.ToDictionary(e => e.Key, e => e.Value.Status.ToString().ToLowerInvariant()),
        };
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
