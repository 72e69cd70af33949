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
    /// The POST routes that set a value (a report, an id, a form, prices), so sending one twice changes nothing. Creates
    /// are not among them: repeated after a lost answer, each makes a twin (an
    /// offering with the same backend_id, a plan without prices, a second identity); registration looks first and
    /// is run again instead. Nor are order and offering transitions (approve, reject, done, erred, activate): Waldur
    /// refuses a repeated one with a 4xx that would hide that the first went through; the order processor reads the
    /// order again and tries again itself. Nor is set_usage: it sets a month-to-date total that other report paths (the
    /// periodic run, a Terminate order's final report, <c>usage report</c>) move on, so a copy sent again after a lost
    /// answer, its Retry-After waited out, can overwrite a newer total; the usage reporter retries it itself, holding the
    /// resource's usage lease, and reads the ledger and Waldur again before it sends anew. Whole routes, not action names: the same action under another resource
    /// need not be safe to repeat. A unit test holds this list against <see cref="IWaldurApi"/>'s POST routes.
    /// </summary>
    internal static readonly IReadOnlyList<string> RepeatableRoutes =
    [
        "/api/marketplace-provider-resources/{uuid}/submit_report/",
        "/api/marketplace-provider-resources/{uuid}/set_backend_id/",
        "/api/marketplace-provider-resources/{uuid}/set_backend_metadata/",
        "/api/marketplace-plans/{uuid}/update_prices/",
        "/api/marketplace-provider-offerings/{uuid}/update_overview/",
        "/api/marketplace-provider-offerings/{uuid}/update_description/",
        "/api/marketplace-provider-offerings/{uuid}/update_options/",
        "/api/marketplace-provider-offerings/{uuid}/update_resource_options/",
        "/api/marketplace-provider-offerings/{uuid}/update_integration/",
        "/api/marketplace-provider-offerings/{uuid}/update_offering_component/",
    ];

    private static readonly string[][] RepeatableRouteSegments = [.. RepeatableRoutes.Select(SegmentsOf)];

    internal static bool IsRepeatable(HttpRequestMessage request)
    {
        if (request.RequestUri is not { IsAbsoluteUri: true } uri)
        {
            return false;
        }

        var path = SegmentsOf(uri.AbsolutePath);
        return RepeatableRouteSegments.Any(route => EndsWithRoute(path, route));
    }

    /// <summary>
    /// Whether the path ends with the route, a <c>{param}</c> standing for any one segment. Its end, because Waldur
    /// may be served under a base path (a BaseUrl with a path), which comes before every route.
    /// </summary>
    private static bool EndsWithRoute(string[] path, string[] route)
    {
        if (path.Length < route.Length)
        {
            return false;
        }

        var offset = path.Length - route.Length;
        for (var i = 0; i < route.Length; i++)
        {
            if (!route[i].StartsWith('{') && !string.Equals(route[i], path[offset + i], StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private static string[] SegmentsOf(string path) => path.Split('/', StringSplitOptions.RemoveEmptyEntries);
}
