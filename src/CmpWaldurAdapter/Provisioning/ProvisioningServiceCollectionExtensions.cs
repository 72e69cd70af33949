using CmpWaldurAdapter.Langflow;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class ProvisioningServiceCollectionExtensions
{
    /// <summary>
    /// Registers the provisioning seam: tenants on Langflow and RAGFlow when <c>Langflow:BaseUrl</c> is configured
    /// (then RAGFlow must be configured too), otherwise <see cref="RecordOnlyProvisioner"/>. Upstream credentials
    /// are encrypted with the host's Data Protection (keys kept in the adapter's database).
    /// </summary>
    public static IServiceCollection AddTenantProvisioning(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<UpstreamCredentials>();

        services.TryAddSingleton<FlowTemplates>(); // over the OfferingCatalogue the host registers

        if (string.IsNullOrWhiteSpace(configuration[$"{LangflowOptions.SectionName}:BaseUrl"]))
        {
            services.AddSingleton<ITenantProvisioner, RecordOnlyProvisioner>();
            return services;
        }

        services.AddLangflowClient(configuration);
        services.AddRagflowClient(configuration);
        services.AddSingleton<LangflowTenant>();
        services.AddSingleton<RagflowTenant>();
        services.AddSingleton<ITenantProvisioner, LangflowRagflowProvisioner>();
        services.AddUpstreamHealthChecks();
        return services;
    }
}
