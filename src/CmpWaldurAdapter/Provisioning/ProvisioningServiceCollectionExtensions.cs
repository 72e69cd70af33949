using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Langflow;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Web;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class ProvisioningServiceCollectionExtensions
{
    /// <summary>The Data Protection application name: every replica must share it to read each other's ciphers.</summary>
    public const string DataProtectionApplicationName = "cmp-adapter";

    /// <summary>
    /// Registers the provisioning seam: tenants on Langflow and RAGFlow when <c>Langflow:BaseUrl</c> is configured
    /// (then RAGFlow must be configured too), otherwise <see cref="RecordOnlyProvisioner"/>. Upstream credentials
    /// are encrypted with Data Protection keys kept in the adapter's database.
    /// </summary>
    public static IServiceCollection AddTenantProvisioning(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddDataProtection()
            .SetApplicationName(DataProtectionApplicationName)
            .PersistKeysToDbContext<AdapterDbContext>();
        services.AddSingleton<UpstreamCredentials>();

        services.AddOptions<CatalogueOptions>().Bind(configuration.GetSection(CatalogueOptions.SectionName));
        services.TryAddSingleton<OfferingCatalogue>();
        services.TryAddSingleton<FlowTemplates>();

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
