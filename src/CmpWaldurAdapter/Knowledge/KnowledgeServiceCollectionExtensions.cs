using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Knowledge.Connectors;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Provisioning;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class KnowledgeServiceCollectionExtensions
{
    /// <summary>
    /// The knowledge base (section <c>Knowledge</c>): documents, connectors, parse monitoring and the
    /// caller seam. Register after tenant provisioning: RAGFlow's client is added here only when provisioning
    /// did not add it (RAGFlow configured without Langflow).
    /// </summary>
    public static IServiceCollection AddKnowledgeBase(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<KnowledgeOptions>().Bind(configuration.GetSection(KnowledgeOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        if (!string.IsNullOrWhiteSpace(configuration["Ragflow:BaseUrl"]) && !services.Any(d => d.ServiceType == typeof(IRagflowApi)))
        {
            services.AddRagflowClient(configuration);
        }

        services.TryAddSingleton<UpstreamCredentials>();
        services.AddSingleton<KnowledgeBase>();
        services.AddSingleton<KnowledgePresence>();
        services.AddSingleton<ParseMonitor>();
        services.AddSingleton<AdoptedDocuments>();
        services.AddSingleton<ConnectorService>();
        services.AddSingleton<KnowledgeDocumentNames>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IKnowledgeCallerResolver, SecretKeyKnowledgeCallerResolver>());
        return services;
    }
}
