using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class UsageServiceCollectionExtensions
{
    /// <summary>
    /// Usage reporting, the Terminate order's final report, and the usage API's authentication seam.
    /// Register after the runtime provisioner, so the final report runs after the tenant is removed.
    /// </summary>
    public static IServiceCollection AddAdapterUsage(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<UsageOptions>().Bind(configuration.GetSection(UsageOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<UsageReporter>();
        services.TryAddSingleton<UsageReportLease>(); // tests put theirs first, to run the lease on a clock they move
        services.TryAddSingleton<UsageSendRetries>(); // tests put theirs first, to record the waits instead of sleeping
        services.AddSingleton<ITenantProvisioner, FinalUsageReportProvisioner>();
        services.TryAddSingleton<ISubscriptionAuthenticator, ApiKeySubscriptionAuthenticator>();
        return services;
    }
}
