using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Chat.Runtime;
using CmpWaldurAdapter.Langflow;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class ChatServiceCollectionExtensions
{
    /// <summary>
    /// The chat API's pipeline. With Langflow configured, agents run on it and retrieve from RAGFlow (the
    /// clients <c>AddTenantProvisioning</c> registers); without it, chat answers 503 and charges nothing.
    /// </summary>
    public static IServiceCollection AddAdapterChat(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ChatOptions>().Bind(configuration.GetSection(ChatOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<KeyRateLimiter>();
        services.AddSingleton<IdempotencyStore>();
        // TryAdd for the seams: a test host registers its own agent first.
        services.TryAddSingleton<IAgentTweaks, AgentTweaks>();
        services.AddSingleton<AgentTurns>();
        services.AddSingleton<AnswerSettlements>();
        services.AddHostedService(sp => sp.GetRequiredService<AnswerSettlements>()); // drains settles at shutdown
        services.AddSingleton<ChatService>();
        if (string.IsNullOrWhiteSpace(configuration[$"{LangflowOptions.SectionName}:BaseUrl"]))
        {
            services.AddSingleton<NoAgentRuntime>();
            services.TryAddSingleton<IAgentRuntime>(sp => sp.GetRequiredService<NoAgentRuntime>());
            services.TryAddSingleton<IKnowledgeRetriever>(sp => sp.GetRequiredService<NoAgentRuntime>());
        }
        else
        {
            services.AddSingleton<LangflowAgentRuntime>();
            services.TryAddSingleton<IAgentRuntime>(sp => sp.GetRequiredService<LangflowAgentRuntime>());
            services.TryAddSingleton<IKnowledgeRetriever, RagflowKnowledgeRetriever>();
            services.TryAddSingleton<CmpWaldurAdapter.Web.IDemoAgent, LangflowDemoAgent>();
        }

        return services;
    }
}
