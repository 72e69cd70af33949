using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Hosting;

/// <summary>
/// What <c>serve</c> tells the operator once at start about a configuration or database that runs but not as they
/// likely meant: each would otherwise show only as orders that build nothing or requests failing with SQL errors.
/// </summary>
public static class StartupNotices
{
    private static readonly TimeSpan SchemaReadTimeout = TimeSpan.FromSeconds(10);

    public static async Task LogStartupNoticesAsync(this IServiceProvider services, CancellationToken cancellationToken)
    {
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(StartupNotices));
        if (services.GetServices<ITenantProvisioner>().OfType<RecordOnlyProvisioner>().Any())
        {
            logger.LogWarning(
                "Langflow:BaseUrl is not set: orders are recorded only (they go done in Waldur) and no agents are built; chat answers 503 agent_unavailable. Set Langflow:BaseUrl (and Ragflow) to provision tenants");
        }

        var web = services.GetRequiredService<IOptions<WebOptions>>().Value;
        if (web.PublicBaseUrl.Scheme == Uri.UriSchemeHttps && !web.TrustForwardedHeaders)
        {
            logger.LogWarning(
                "Web:PublicBaseUrl is https but Web:TrustForwardedHeaders is off: every request is taken as HTTPS for its cookies and HSTS, but behind a reverse proxy or ingress the try page's and widget's per-address limits count the proxy's address for every visitor. Set Web:TrustForwardedHeaders when TLS ends at a proxy that alone reaches the adapter");
        }

        if (web.TrustForwardedHeaders && web.ForwardedProxyNetworks.Count == 0)
        {
            logger.LogWarning(
                "Web:TrustForwardedHeaders is on and Web:ForwardedProxyNetworks is empty: X-Forwarded-For is believed from every connection, so a client that reaches the adapter without passing the proxy picks the address the try page's and widget's per-address limits count (and the logs show). List the proxy's networks in Web:ForwardedProxyNetworks (CIDR, e.g. the ingress controller's pods)");
        }

        // A database that cannot be read now is reported by /readyz; the start does not wait on it.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(SchemaReadTimeout);
        var schema = services.GetRequiredService<SchemaStatus>();
        try
        {
            var pending = await schema.PendingAsync(timeout.Token);
            if (pending.Count > 0)
            {
                logger.LogError(
                    "The database schema is behind this build: {PendingCount} migration(s) not applied ({PendingMigrations}). Run 'cmp-adapter db migrate' (the Helm chart's migration hook); until then /readyz answers 503 and this replica receives no traffic",
                    pending.Count, string.Join(", ", pending));
                return;
            }

            var unknown = await schema.UnknownAppliedAsync(timeout.Token);
            if (unknown.Count > 0)
            {
                // Mid-rollout or a rollback: old replicas must keep serving, so this is said but readiness stays green.
                logger.LogWarning(
                    "The database holds {UnknownCount} migration(s) this build does not know ({UnknownMigrations}): a newer build migrated it. Serving on it, as during a rollout or rollback",
                    unknown.Count, string.Join(", ", unknown));
            }
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Could not read the database's applied migrations at start ({Error}); /readyz reports the database until it can", exception.GetType().Name);
        }
    }
}
