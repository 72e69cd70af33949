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
            .AddUpstreamResilience<WaldurOptions>(retryPost: IsRepeatable);
        return services;
    }

    /// <summary>
    /// The POST actions that set a value (a month-to-date usage total, a report, an id, a form, prices), so sending
    /// one twice changes nothing. Creates are not among them: repeated after a lost answer, each makes a twin (an
    /// offering with the same backend_id, a plan without prices, a second identity); registration looks first and
    /// is run again instead. Nor are order and offering transitions (approve, reject, done, erred, activate): Waldur
    /// refuses a repeated one with a 4xx that would hide that the first went through; the order processor reads the
    /// order again and tries again itself. A unit test holds this list against <see cref="IWaldurApi"/>'s POST routes.
    /// </summary>
    internal static readonly HashSet<string> RepeatableActions = new(StringComparer.Ordinal)
    {
        "set_usage",
        "submit_report",
        "set_backend_id",
        "set_backend_metadata",
        "update_prices",
        "update_overview",
        "update_description",
        "update_options",
        "update_resource_options",
        "update_integration",
        "update_offering_component",
    };

    internal static bool IsRepeatable(HttpRequestMessage request) =>
        request.RequestUri is { IsAbsoluteUri: true } uri && RepeatableActions.Contains(uri.AbsolutePath.TrimEnd('/').Split('/')[^1]);
}
