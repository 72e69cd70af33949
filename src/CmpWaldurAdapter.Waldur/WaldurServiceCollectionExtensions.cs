using System.Text.Json;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Refit;

namespace Microsoft.Extensions.DependencyInjection;

public static class WaldurServiceCollectionExtensions
{
    /// <summary>JSON as Waldur speaks it: snake_case names come from the contracts; nulls are not sent.</summary>
    public static readonly JsonSerializerOptions WaldurJson = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    /// <summary>Registers <see cref="IWaldurApi"/> with token auth and exactly one resilience pipeline.</summary>
    public static IServiceCollection AddWaldurClient(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<WaldurOptions>()
            .Bind(configuration.GetSection(WaldurOptions.SectionName))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddTransient<WaldurTokenHandler>();

        services.AddRefitGeneratedClient<IWaldurApi>(new RefitSettings(new SystemTextJsonContentSerializer(WaldurJson)))
            .ConfigureHttpClient((sp, http) =>
            {
                var options = sp.GetRequiredService<IOptions<WaldurOptions>>().Value;
                http.BaseAddress = options.BaseUrl;
                // The resilience pipeline owns timeouts.
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .AddHttpMessageHandler<WaldurTokenHandler>()
            // Waldur's POSTs are state transitions and month-to-date usage totals: repeating one changes nothing.
            .AddUpstreamResilience<WaldurOptions>(retryPosts: true);
        return services;
    }
}
