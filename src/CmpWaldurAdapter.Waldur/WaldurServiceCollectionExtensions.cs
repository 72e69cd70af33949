using System.Text.Json;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
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
            .AddStandardResilienceHandler()
            .Configure((HttpStandardResilienceOptions resilience, IServiceProvider sp) =>
            {
                var options = sp.GetRequiredService<IOptions<WaldurOptions>>().Value;
                resilience.AttemptTimeout.Timeout = options.AttemptTimeout;
                resilience.Retry.MaxRetryAttempts = Math.Max(options.RetryAttempts, 1);
                if (options.RetryAttempts == 0)
                {
                    // Polly needs at least one attempt configured; "no retries" means handling nothing.
                    resilience.Retry.ShouldHandle = _ => ValueTask.FromResult(false);
                }

                resilience.Retry.Delay = options.RetryDelay;
                resilience.Retry.BackoffType = DelayBackoffType.Exponential;
                resilience.Retry.UseJitter = true;
                resilience.TotalRequestTimeout.Timeout = (options.AttemptTimeout * (options.RetryAttempts + 1)) + (options.RetryDelay * 60);
                resilience.CircuitBreaker.SamplingDuration = options.AttemptTimeout * 2;
            });
        return services;
    }
}
