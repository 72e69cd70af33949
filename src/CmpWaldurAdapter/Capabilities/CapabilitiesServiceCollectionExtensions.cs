using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Capabilities.Automations;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.Capabilities.Images;
using CmpWaldurAdapter.Capabilities.Voice;
using CmpWaldurAdapter.Knowledge.Sources;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class CapabilitiesServiceCollectionExtensions
{
    /// <summary>The capabilities beyond chat: human handoff, automations, image generation and voice.</summary>
    public static IServiceCollection AddAdapterCapabilities(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<HandoffOptions>().Bind(configuration.GetSection(HandoffOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<HandoffService>();
        services.AddSingleton<HandoffWebhookSender>();
        services.TryAddSingleton<IHostAddressResolver, DnsHostAddressResolver>();
        services.AddSingleton<WebhookAddresses>();
        // Buyer-chosen receivers: connections only to checked public addresses, no proxy, no cookies, no redirects.
        services.AddHttpClient(HandoffWebhookSender.HttpClientName)
            .ConfigurePrimaryHttpMessageHandler(sp => sp.GetRequiredService<WebhookAddresses>().Guard.CreateHandler());
        services.AddSingleton<CapabilityPipeline>();
        services.AddOptions<AutomationOptions>().Bind(configuration.GetSection(AutomationOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<AutomationService>();
        services.AddSingleton<AutomationScheduler>();
        services.AddOptions<ImageOptions>().Bind(configuration.GetSection(ImageOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<ImageService>();
        services.AddOptions<VoiceOptions>().Bind(configuration.GetSection(VoiceOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<VoiceService>();
        return services;
    }
}
