using CmpWaldurAdapter.Capabilities.Handoff;
using Microsoft.Extensions.Configuration;

namespace Microsoft.Extensions.DependencyInjection;

public static class CapabilitiesServiceCollectionExtensions
{
    /// <summary>The capabilities beyond chat: human handoff, automations, image generation and voice.</summary>
    public static IServiceCollection AddAdapterCapabilities(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<HandoffOptions>().Bind(configuration.GetSection(HandoffOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<HandoffService>();
        services.AddSingleton<HandoffWebhookSender>();
        services.AddHttpClient(HandoffWebhookSender.HttpClientName);
        return services;
    }
}
