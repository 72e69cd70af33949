using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Ragflow.Api;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CmpWaldurAdapter.Web;

/// <summary>The agent runtime's and the knowledge base's state on <c>/status</c>, in <see cref="HealthEndpoints"/>' style: named, no error details.</summary>
public static class UpstreamHealthChecks
{
    public static IServiceCollection AddUpstreamHealthChecks(this IServiceCollection services)
    {
        services.AddHealthChecks()
            .AddCheck<LangflowHealthCheck>("langflow", tags: [HealthEndpoints.UpstreamTag], timeout: TimeSpan.FromSeconds(5))
            .AddCheck<RagflowHealthCheck>("ragflow", tags: [HealthEndpoints.UpstreamTag], timeout: TimeSpan.FromSeconds(5));
        return services;
    }

    /// <summary><c>GET /health_check</c>: Langflow's database and chat cache answer (plain <c>/health</c> can answer before Langflow is up).</summary>
    private sealed class LangflowHealthCheck(ILangflowApi langflow) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var health = await langflow.HealthCheckAsync(cancellationToken);
                return health.Status == "ok" ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("status " + health.Status);
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy(exception.GetType().Name);
            }
        }
    }

    /// <summary><c>GET /api/v1/system/healthz</c>: RAGFlow's database, Redis, document engine and storage answer.</summary>
    private sealed class RagflowHealthCheck(IRagflowApi ragflow) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                var health = await ragflow.HealthAsync(cancellationToken);
                return health.Status == "ok" ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("status " + health.Status);
            }
            catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy(exception.GetType().Name);
            }
        }
    }
}
