using CmpWaldurAdapter.Configuration;
using CmpWaldurAdapter.Knowledge.Sources;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

public static class KnowledgeSourcesServiceCollectionExtensions
{
    private const string UserAgent = "CmpWaldurAdapter-KnowledgeSources/1.0";

    /// <summary>
    /// Registers <see cref="SafeUrlFetcher"/>, <see cref="NotionSource"/> and <see cref="ConfluenceSource"/>
    /// as typed HTTP clients, each with exactly one resilience pipeline, and their options
    /// (<c>Knowledge:Url</c>, <c>Knowledge:Notion</c>, <c>Knowledge:Confluence</c>).
    /// </summary>
    public static IServiceCollection AddKnowledgeSources(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<UrlSourceOptions>().Bind(configuration.GetSection(UrlSourceOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<NotionSourceOptions>().Bind(configuration.GetSection(NotionSourceOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<ConfluenceSourceOptions>().Bind(configuration.GetSection(ConfluenceSourceOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IHostAddressResolver, DnsHostAddressResolver>();

        // Buyer-chosen hosts: the SSRF-guarded handler (no proxy, no cookies, no automatic redirects);
        // no circuit breaker, one bad site must not pause the others.
        services.AddHttpClient<SafeUrlFetcher>(http =>
            {
                http.Timeout = Timeout.InfiniteTimeSpan;
                http.DefaultRequestHeaders.UserAgent.ParseAdd(UserAgent);
            })
            .ConfigurePrimaryHttpMessageHandler(GuardedHandler)
            .AddStandardResilienceHandler()
            .Configure((HttpStandardResilienceOptions resilience, IServiceProvider sp) =>
            {
                if (ValidOptions.OrNull<UrlSourceOptions>(sp) is not { } options)
                {
                    return;
                }

                SourceHttp.Configure(resilience, options.Timeout, options.RetryAttempts, options.RetryDelay, options.Timeout);
                resilience.CircuitBreaker.ShouldHandle = _ => ValueTask.FromResult(false);
            });

        services.AddHttpClient<NotionSource>((sp, http) =>
            {
                var baseUrl = sp.GetRequiredService<IOptions<NotionSourceOptions>>().Value.BaseUrl;
                // Relative paths resolve under the base only when it ends in a slash.
                http.BaseAddress = baseUrl.AbsoluteUri.EndsWith('/') ? baseUrl : new Uri(baseUrl.AbsoluteUri + "/");
                http.Timeout = Timeout.InfiniteTimeSpan;
                http.DefaultRequestHeaders.UserAgent.ParseAdd(UserAgent);
            })
            // One client serves every tenant: no cookie jar (it would carry one tenant's cookies to the next), no redirects.
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { UseCookies = false, AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
            .AddStandardResilienceHandler()
            .Configure((HttpStandardResilienceOptions resilience, IServiceProvider sp) =>
            {
                if (ValidOptions.OrNull<NotionSourceOptions>(sp) is not { } options)
                {
                    return;
                }

                SourceHttp.Configure(resilience, options.AttemptTimeout, options.RetryAttempts, options.RetryDelay);
            });

        // Each buyer has their own site: one circuit per site, so one broken site pauses only itself.
        services.AddHttpClient<ConfluenceSource>(http =>
            {
                http.Timeout = Timeout.InfiniteTimeSpan;
                http.DefaultRequestHeaders.UserAgent.ParseAdd(UserAgent);
            })
            .ConfigurePrimaryHttpMessageHandler(GuardedHandler)
            .AddStandardResilienceHandler()
            .SelectPipelineByAuthority()
            .Configure((HttpStandardResilienceOptions resilience, IServiceProvider sp) =>
            {
                if (ValidOptions.OrNull<ConfluenceSourceOptions>(sp) is not { } options)
                {
                    return;
                }

                SourceHttp.Configure(resilience, options.AttemptTimeout, options.RetryAttempts, options.RetryDelay);
            });

        return services;
    }

    private static HttpMessageHandler GuardedHandler(IServiceProvider sp) =>
        new RemoteAddressGuard(sp.GetRequiredService<IHostAddressResolver>(), sp.GetRequiredService<IOptionsMonitor<UrlSourceOptions>>()).CreateHandler();
}
