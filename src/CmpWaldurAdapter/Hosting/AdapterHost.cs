using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Usage;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;
using Prometheus;
using Quartz;
using Serilog;
using Serilog.Formatting.Compact;

namespace CmpWaldurAdapter.Hosting;

/// <summary>
/// The composition root. <see cref="AddAdapterServices"/> registers everything the CLI and the web host
/// share; <see cref="AddAdapterWorkers"/> adds the background workers only <c>serve</c> runs.
/// </summary>
public static class AdapterHost
{
    /// <summary>Builds the web host that <c>cmp-adapter serve</c> runs: endpoints plus workers.</summary>
    public static WebApplication BuildServer(string[] args, string? configFile, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        AddConfiguration(builder.Configuration, configFile);
        configure?.Invoke(builder);
        builder.Services.AddAdapterLogging(builder.Configuration, toStandardError: false);
        builder.Services.AddAdapterServices(builder.Configuration);
        builder.Services.AddAdapterWorkers(builder.Configuration);
        builder.Services.AddBuyerWebPages();

        // The API document takes its JSON rules from these options: with the web defaults every number would be
        // described as "integer or string", which client generators turn into untyped fields. Bodies are read by
        // ApiRequests with options of its own, so this changes only the description.
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict);
        builder.Services.AddOpenApi("v1", options => options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "CmpWaldurAdapter API";
            document.Info.Description = "OpenAI-compatible chat, API keys, usage and knowledge base of marketplace subscriptions. Authenticate with a subscription's secret key: Authorization: Bearer sk_live_…";
            document.Info.Version = typeof(AdapterHost).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
            document.Servers = [];
            return Task.CompletedTask;
        }).AddRequestBodyDocumentation().AddAlternativeResponseDocumentation().AddListQueryDocumentation().AddRetryAfterDocumentation());

        var app = builder.Build();
        app.UseRequestIds();
        app.UseApiFallbacks();
        app.UseMetricsPort();
        // The host's own logger (the static one is silent: each host logs through its own sinks).
        app.UseSerilogRequestLogging(options => options.Logger = app.Services.GetRequiredService<Serilog.ILogger>());
        app.UseBuyerWeb();
        app.MapHealthEndpoints();
        app.MapMetrics("/metrics", app.Services.GetRequiredService<AdapterMetrics>().Registry);
        app.MapApiKeyEndpoints();
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapUsageEndpoints();
        app.MapChatEndpoints();
        app.MapKnowledgeEndpoints();
        app.MapCapabilityEndpoints();
        return app;
    }

    /// <summary>Builds the host operator commands run in: the same services, no workers, logs on stderr.</summary>
    public static IHost BuildCommandHost(string? configFile, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { ContentRootPath = AppContext.BaseDirectory });
        AddConfiguration(builder.Configuration, configFile);
        configure?.Invoke(builder);
        builder.Services.AddAdapterLogging(builder.Configuration, toStandardError: true);
        builder.Services.AddAdapterServices(builder.Configuration);
        return builder.Build();
    }

    internal static void AddConfiguration(IConfigurationManager configuration, string? configFile)
    {
        if (!string.IsNullOrEmpty(configFile))
        {
            try
            {
                // Loaded here, at once: a file that is missing, unreadable or not JSON fails now, and only this.
                configuration.AddJsonFile(Path.GetFullPath(configFile), optional: false, reloadOnChange: false);
            }
            catch (Exception exception) when (exception is IOException or InvalidDataException or System.Text.Json.JsonException or FormatException or UnauthorizedAccessException)
            {
                throw new ConfigurationFileException($"The configuration file {configFile} cannot be used: {exception.Message}", exception);
            }
        }

        // Environment variables win over files (Waldur__Token=…), as operators and Kubernetes expect.
        configuration.AddEnvironmentVariables();
    }

    public static IServiceCollection AddAdapterLogging(this IServiceCollection services, IConfiguration configuration, bool toStandardError)
    {
        services.AddSerilog((sp, logger) =>
        {
            // Without levels of its own, the adapter would write every SQL command, request stage and scheduler tick as
            // an Information line (ten and more per chat message). Configured levels apply over these source by source:
            // setting only the default level (as the chart does) keeps the framework quiet.
            logger.MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft", Serilog.Events.LogEventLevel.Warning)
                .MinimumLevel.Override("Microsoft.Hosting.Lifetime", Serilog.Events.LogEventLevel.Information)
                .MinimumLevel.Override("System", Serilog.Events.LogEventLevel.Warning)
                .MinimumLevel.Override("Quartz", Serilog.Events.LogEventLevel.Warning);

            logger.ReadFrom.Configuration(configuration)
                .Enrich.FromLogContext()
                .Enrich.WithProperty("Application", "cmp-adapter")
                .Enrich.With<LogRedaction>(); // last: sees every property the others added
            var sinks = sp.GetServices<Serilog.Core.ILogEventSink>().ToList();
            foreach (var sink in sinks)
            {
                logger.WriteTo.Sink(sink);
            }

            if (sinks.Count == 0 && !configuration.GetSection("Serilog:WriteTo").Exists())
            {
                // Structured JSON lines by default; commands keep stdout for their own output.
                logger.WriteTo.Console(new RenderedCompactJsonFormatter(), standardErrorFromLevel: toStandardError ? Serilog.Events.LogEventLevel.Verbose : null);
            }
        }, preserveStaticLogger: true); // each host its own logger: no process-wide state
        return services;
    }

    public static IServiceCollection AddAdapterServices(this IServiceCollection services, IConfiguration configuration)
    {
        // TryAdd: a test host registers its own clock first.
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<AdapterMetrics>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHttpMessageHandlerBuilderFilter, UpstreamMetricsFilter>());
        services.AddSingleton<AdapterInstance>();
        services.AddAdapterPersistence(configuration);
        services.AddSingleton<DatabaseLeases>();
        services.AddWaldurClient(configuration);

        services.Configure<List<OfferingBinding>>(configuration.GetSection("Offerings"));
        services.AddSingleton<ServedOfferings>();
        services.Configure<CatalogueOptions>(configuration.GetSection(CatalogueOptions.SectionName));
        services.AddSingleton<OfferingCatalogue>();
        services.Configure<RegistrationOptions>(configuration.GetSection(RegistrationOptions.SectionName));
        services.AddSingleton<OfferingRegistrar>();
        services.AddSingleton<DemoFlowPublisher>();
        services.AddOptions<WebOptions>().Bind(configuration.GetSection(WebOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();

        // The host's own default (30 s) would cut an agent run half-way when a pod is stopped; Hosting:ShutdownTimeout
        // replaces it (and wins over the host's root key shutdownTimeoutSeconds, which the host itself reads).
        services.AddOptions<HostingOptions>().Bind(configuration.GetSection(HostingOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<HostOptions>().Configure<IOptions<HostingOptions>>((host, hosting) => host.ShutdownTimeout = hosting.Value.ShutdownTimeout);

        services.AddOptions<OrdersOptions>().Bind(configuration.GetSection(OrdersOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<OrderInbox>();
        services.AddSingleton<OrderLeases>();
        services.AddSingleton<OrderProcessor>();
        services.AddSingleton<OrderPoller>();
        services.AddSingleton<SubscriptionReporter>();
        services.AddSingleton<ReportLease>();
        services.AddAdapterKeyRing(configuration);
        services.AddTenantProvisioning(configuration);
        services.AddSingleton<ApiKeyService>();
        services.AddSingleton<ITenantProvisioner, ApiKeyProvisioner>();
        services.AddAdapterCredits(configuration);
        services.AddAdapterUsage(configuration);
        services.AddKnowledgeSources(configuration);
        services.AddSingleton<CmpWaldurAdapter.Reconciliation.Reconciler>();
        services.AddAdapterChat(configuration);
        services.AddAdapterCapabilities(configuration);
        services.AddKnowledgeBase(configuration);
        services.AddBuyerWeb();

        services.AddOptions<EventsOptions>().Bind(configuration.GetSection(EventsOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<EventChannelRegistrar>();
        services.AddSingleton<ResourceStateSync>();
        services.AddSingleton<TearDownWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<TearDownWorker>()); // finishes queued teardowns at shutdown
        services.AddSingleton<EventChannelStatus>();

        services.AddAdapterHealthChecks();
        return services;
    }

    public static IServiceCollection AddAdapterWorkers(this IServiceCollection services, IConfiguration configuration)
    {
        // Workers that read and write the database run only once it holds this build's migrations (SchemaGate). The
        // teardown worker and the answer settlements are not gated: only these workers and answered requests give them work.
        AddGatedWorker<OrderInboxWorker>(services);
        AddGatedWorker<StartupOrderPoll>(services);
        AddGatedWorker<WaldurEventListener>(services);

        var orders = configuration.GetSection(OrdersOptions.SectionName).Get<OrdersOptions>() ?? new OrdersOptions();
        var events = configuration.GetSection(EventsOptions.SectionName).Get<EventsOptions>() ?? new EventsOptions();
        var database = configuration.GetSection(DatabaseOptions.SectionName).Get<DatabaseOptions>() ?? new DatabaseOptions();
        var credits = configuration.GetSection(CreditsOptions.SectionName).Get<CreditsOptions>() ?? new CreditsOptions();
        var usage = configuration.GetSection(UsageOptions.SectionName).Get<UsageOptions>() ?? new UsageOptions();
        var knowledge = configuration.GetSection(KnowledgeOptions.SectionName).Get<KnowledgeOptions>() ?? new KnowledgeOptions();
        var automations = configuration.GetSection(CmpWaldurAdapter.Capabilities.Automations.AutomationOptions.SectionName).Get<CmpWaldurAdapter.Capabilities.Automations.AutomationOptions>() ?? new();
        var handoff = configuration.GetSection(CmpWaldurAdapter.Capabilities.Handoff.HandoffOptions.SectionName).Get<CmpWaldurAdapter.Capabilities.Handoff.HandoffOptions>() ?? new();
        var web = configuration.GetSection(CmpWaldurAdapter.Web.WebOptions.SectionName).Get<CmpWaldurAdapter.Web.WebOptions>() ?? new();

        services.AddQuartz(quartz =>
        {
            quartz.ConfigureScheduler(scheduler =>
            {
                scheduler.InstanceName = "cmp-adapter";
                scheduler.GenerateInstanceId = true;
                // A pod being stopped asks its running jobs to stop (they all honour the token) and still waits for them:
                // a long usage run would otherwise be killed at the end of Kubernetes' grace period half-way through.
                scheduler.ShutdownJobInterruption = ShutdownJobInterruption.WhenWaitingForJobs;
            });
            if (database.Provider == DatabaseProvider.Postgres)
            {
                // Clustered on the shared database: each job runs on exactly one replica per firing.
                quartz.UsePersistentStore(store =>
                {
                    store.UsePostgres(database.ConnectionString);
                    store.UseClustering();
                    store.UseSystemTextJsonSerializer();
                    store.ProvisionSchema();
                });
            }
            else
            {
                quartz.UseInMemoryStore();
            }

            Every<RefeedStuckOrdersJob>(quartz, RefeedStuckOrdersJob.Key, orders.StuckCheckInterval);
            Every<SyncResourceStatesJob>(quartz, SyncResourceStatesJob.Key, events.ResourceSyncInterval);
            Every<ReportUsageJob>(quartz, ReportUsageJob.Key, usage.ReportInterval);
            Every<ReleaseExpiredHoldsJob>(quartz, ReleaseExpiredHoldsJob.Key, credits.ReservationSweepInterval);
            Every<PurgeExpiredRowsJob>(quartz, PurgeExpiredRowsJob.Key, database.PurgeInterval);
            Every<CmpWaldurAdapter.Credits.SpendAlerts.CheckSpendAlertsJob>(quartz, CmpWaldurAdapter.Credits.SpendAlerts.CheckSpendAlertsJob.Key, credits.SpendAlertCheckInterval);
            Every<PollKnowledgeParsesJob>(quartz, PollKnowledgeParsesJob.Key, knowledge.PollInterval);
            Every<CmpWaldurAdapter.Capabilities.Handoff.DeliverHandoffWebhooksJob>(quartz, CmpWaldurAdapter.Capabilities.Handoff.DeliverHandoffWebhooksJob.Key, handoff.DeliveryInterval);
            Every<CmpWaldurAdapter.Web.RenewConsoleLinksJob>(quartz, CmpWaldurAdapter.Web.RenewConsoleLinksJob.Key, web.ConsoleLinkRenewalInterval);
            Every<CmpWaldurAdapter.Capabilities.Automations.RunScheduledAutomationsJob>(quartz, CmpWaldurAdapter.Capabilities.Automations.RunScheduledAutomationsJob.Key, automations.ScheduleCheckInterval);
            // With events, polling is the safety net for the events that never arrive.
            Every<PollOrdersJob>(quartz, PollOrdersJob.Key, events.Enabled ? events.FallbackPollInterval : orders.PollInterval);
        });
        // Every start declares the triggers again; on the shared store the declared one keeps the stored one's firing
        // history, so a rolling deploy or a crash-looping pod does not push an hourly usage report back by an hour each time.
        services.Configure<QuartzOptions>(quartz => quartz.Scheduling.ScheduleTriggerRelativeToReplacedTrigger = true);
        // The scheduler is created and stopped with the host, but started by the schema gate.
        services.AddQuartzHostedService(quartz =>
        {
            quartz.WaitForJobsToComplete = true;
            quartz.AutoStart = false;
        });
        // Registered after the scheduler's service, so stopped before it: a stopping host never starts a scheduler it shuts down.
        services.AddSingleton<SchemaGate>();
        services.AddHostedService(sp => sp.GetRequiredService<SchemaGate>());
        return services;
    }

    private static void AddGatedWorker<TWorker>(IServiceCollection services)
        where TWorker : BackgroundService
    {
        services.AddSingleton<TWorker>();
        services.AddHostedService<SchemaGatedWorker<TWorker>>();
    }

    private static void Every<TJob>(IQuartzBuilder quartz, JobKey key, TimeSpan interval)
        where TJob : IJob
    {
        quartz.AddJob<TJob>(job => job.WithIdentity(key).StoreDurably());
        quartz.AddTrigger(trigger => trigger
            .ForJob(key)
            .WithIdentity(key.Name + "-trigger", key.Group)
            .StartAt(DateTimeOffset.UtcNow + interval)
            .WithSimpleSchedule(schedule => schedule.WithInterval(interval).RepeatForever().WithMisfireInstruction(SimpleTriggerMisfireInstruction.NextWithRemainingCount)));
    }
}

/// <summary>The <c>--config</c> file cannot be read as configuration (missing, unreadable, not JSON).</summary>
public sealed class ConfigurationFileException(string message, Exception innerException) : Exception(message, innerException);
