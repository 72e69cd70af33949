using System.Text.Json;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Langflow;
using CmpWaldurAdapter.Langflow.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Refit;

namespace Microsoft.Extensions.DependencyInjection;

public static class LangflowServiceCollectionExtensions
{
    /// <summary>JSON as Langflow speaks it: snake_case names come from the contracts; nulls are not sent (PATCH means "unchanged").</summary>
    public static readonly JsonSerializerOptions LangflowJson = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowReadingFromString,
    };

    /// <summary>
    /// Registers <see cref="ILangflowApi"/> with per-request credentials and exactly one resilience pipeline,
    /// plus the superuser's session.
    /// </summary>
    public static IServiceCollection AddLangflowClient(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<LangflowOptions>()
            .Bind(configuration.GetSection(LangflowOptions.SectionName))
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddTransient<LangflowAuthHandler>();
        services.AddSingleton<LangflowSuperuser>();

        services.AddRefitGeneratedClient<ILangflowApi>(new RefitSettings(new SystemTextJsonContentSerializer(LangflowJson)))
            .ConfigureHttpClient((sp, http) =>
            {
                http.BaseAddress = sp.GetRequiredService<IOptions<LangflowOptions>>().Value.BaseUrl;
                // The resilience pipeline owns timeouts.
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            // A redirect means a path with the wrong trailing slash: fail loudly instead of following it
            // (a redirected POST can lose its body and auth).
            .ConfigurePrimaryHttpMessageHandler(Connections)
            .AddHttpMessageHandler<LangflowAuthHandler>()
            // A run takes as long as the agent needs (tools, a slow model): its caller bounds it by Chat:RunTimeout, as it
            // does a streamed one; the attempt timeout stays for Langflow's quick calls.
            .AddUpstreamResilience<LangflowOptions>(retryPost: null, callerBounded: IsRun);

        // Streamed runs: the same pooled connections and credentials, no retries or attempt timeouts (the caller bounds the run).
        services.AddHttpClient<LangflowStreamingRuns>(LangflowStreamingRuns.HttpClientName, (sp, http) =>
            {
                http.BaseAddress = sp.GetRequiredService<IOptions<LangflowOptions>>().Value.BaseUrl;
                http.Timeout = Timeout.InfiniteTimeSpan;
            })
            .ConfigurePrimaryHttpMessageHandler(Connections)
            .AddHttpMessageHandler<LangflowAuthHandler>()
            .RemoveAllLoggers();
        return services;
    }

    /// <summary>
    /// Connections to Langflow. A run has no attempt timeout, so connecting gets its own: a Langflow that drops
    /// packets fails a run within Langflow:AttemptTimeout instead of holding it until Chat:RunTimeout
    /// (SocketsHttpHandler waits forever by default).
    /// </summary>
    private static SocketsHttpHandler Connections(IServiceProvider sp) => new()
    {
        AllowAutoRedirect = false,
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        ConnectTimeout = sp.GetRequiredService<IOptions<LangflowOptions>>().Value.AttemptTimeout,
    };

    private static bool IsRun(HttpRequestMessage request) =>
        request.Method == HttpMethod.Post && request.RequestUri?.AbsolutePath.Contains("/api/v1/run/", StringComparison.Ordinal) == true;
}
