using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Reports;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.FileProviders;

namespace CmpWaldurAdapter.Web;

/// <summary>Registration of the buyer pages (marketplace, try, console, widget).</summary>
public static class BuyerWebServiceCollectionExtensions
{
    /// <summary>Our pages load scripts and styles from our own files only (no inline scripts).</summary>
    public const string PageSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

    public static IServiceCollection AddBuyerWeb(this IServiceCollection services)
    {
        services.AddSingleton<SignedTokens>();
        services.AddSingleton<BuyerWebStore>();
        // Console sessions check anti-forgery tokens; the command host builds the report contributor too.
        services.AddHttpContextAccessor();
        services.AddAntiforgery(options => options.HeaderName = "RequestVerificationToken");
        // Named and made Secure per request (__Host-cmp_af on secure ones), and each token tied to the console session.
        services.AddOptions<AntiforgeryOptions>().Configure<IHttpContextAccessor>((options, requests) => options.Cookie = new AntiforgeryCookieBuilder(requests));
        services.Replace(ServiceDescriptor.Singleton<IAntiforgeryAdditionalDataProvider, SessionBoundAntiforgery>());
        services.AddSingleton<ConsoleAccess>();
        services.AddSingleton<IConsoleSession>(sp => sp.GetRequiredService<ConsoleAccess>());
        services.AddSingleton<Knowledge.IKnowledgeCallerResolver, ConsoleKnowledgeCallerResolver>();
        services.AddSingleton<ConsoleReportContributor>();
        services.AddSingleton<ConsoleLinkRenewal>();
        services.AddSingleton<IReportContributor>(sp => sp.GetRequiredService<ConsoleReportContributor>());
        services.AddSingleton<ConsoleSettings>();
        services.AddSingleton<AllowanceCounters>();
        services.AddSingleton<TryLimiter>();
        services.AddSingleton<WidgetLimits>();
        services.AddOptions<ChatOptions>();

        // The agent runtime, retriever, tweaks and demo agent are optional constructor parameters: the chat and
        // sandbox parts register them, and the pages say "unavailable" until they do.
        services.AddSingleton<IPageChat, AgentPageChat>();
        return services;
    }

    /// <summary>Pages and their endpoints; the Razor Pages live in Web/Pages, static files are embedded in the executable.</summary>
    public static IServiceCollection AddBuyerWebPages(this IServiceCollection services)
    {
        services.AddRazorPages(options => options.RootDirectory = "/Web/Pages")
            .AddApplicationPart(typeof(BuyerWebServiceCollectionExtensions).Assembly);
        return services;
    }

    public static WebApplication UseBuyerWeb(this WebApplication app)
    {
        // Read from configuration: WebOptions itself is bound at the first request, after the host knows its address.
        if (app.Configuration.GetValue<bool>($"{WebOptions.SectionName}:{nameof(WebOptions.TrustForwardedHeaders)}"))
        {
            var forwarded = new ForwardedHeadersOptions
            {
                ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto,
                ForwardLimit = app.Configuration.GetValue($"{WebOptions.SectionName}:{nameof(WebOptions.ForwardedProxies)}", WebOptions.DefaultForwardedProxies),
            };
            // Without listed networks the operator vouches that only the proxy reaches the adapter.
            forwarded.KnownIPNetworks.Clear();
            forwarded.KnownProxies.Clear();
            foreach (var network in app.Configuration.GetSection($"{WebOptions.SectionName}:{nameof(WebOptions.ForwardedProxyNetworks)}").Get<string[]>() ?? [])
            {
                forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.TryParse(network.Trim(), out var parsed)
                    ? parsed
                    : throw new InvalidOperationException($"{WebOptions.SectionName}:{nameof(WebOptions.ForwardedProxyNetworks)} holds '{network}', which is not a network in CIDR notation (10.244.0.0/16)."));
            }

            app.UseForwardedHeaders(forwarded);
        }

        app.Use(async (http, next) =>
        {
            http.Response.OnStarting(() =>
            {
                var headers = http.Response.Headers;
                headers.XContentTypeOptions = "nosniff";
                // A browser that reached the adapter over HTTPS once never tries plain HTTP for it again, where a network
                // attacker could answer. Sent only to secure requests (HTTPS, or an https public address: TLS ended at a
                // proxy), so plain-HTTP setups are unaffected.
                if (SecureRequests.IsSecure(http))
                {
                    headers.StrictTransportSecurity = "max-age=31536000";
                }

                if (http.Response.ContentType?.StartsWith("text/html", StringComparison.Ordinal) == true)
                {
                    headers.ContentSecurityPolicy = PageSecurityPolicy;
                    headers["Referrer-Policy"] = "no-referrer";
                    headers.XFrameOptions = "DENY";
                }

                return Task.CompletedTask;
            });
            await next();
        });

        var files = new EmbeddedFileProvider(typeof(BuyerWebServiceCollectionExtensions).Assembly, "CmpWaldurAdapter.wwwroot");
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            ContentTypeProvider = new FileExtensionContentTypeProvider(),
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;
                headers.CacheControl = "public, max-age=300";
                if (context.File.Name == "widget.js")
                {
                    // The widget script is loaded by buyers' websites.
                    headers.AccessControlAllowOrigin = "*";
                    headers["Cross-Origin-Resource-Policy"] = "cross-origin";
                }
            },
        });
        app.UseRouting();
        app.MapRazorPages();
        app.MapBuyerWebEndpoints();
        return app;
    }
}
