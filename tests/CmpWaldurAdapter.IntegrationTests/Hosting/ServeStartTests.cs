using System.Collections.Concurrent;
using System.Data.Common;
using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Quartz;
using Serilog.Core;
using Serilog.Events;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

/// <summary><c>serve</c> as operators run it (in-process, through the command line), checked while it runs.</summary>
public sealed class ServeStartTests
{
    [Fact]
    public async Task On_postgres_one_migration_behind_serve_is_alive_but_not_ready_and_says_to_run_db_migrate_until_it_has_run()
    {
        await using var bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres, emptyDatabase: true);
        var previous = await MigrateToPreviousAsync(bed);
        var context = Context(bed);
        await ServingAsync(context, async client =>
        {
            var notReady = await client.GetAsync("/readyz");
            var body = JsonNode.Parse(await notReady.Content.ReadAsStringAsync())!;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
            Assert.Equal("healthy", body["checks"]!["database"]!.GetValue<string>());
            Assert.Equal("unhealthy", body["checks"]!["schema"]!.GetValue<string>());
            Assert.Contains("db migrate", body["reasons"]!["schema"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
            // One line at start; the framework's line for each failed probe comes from elsewhere.
            var error = Assert.Single(bed.Logs.Events, e => e.Level >= LogEventLevel.Error && FromStartupNotices(e));
            Assert.Contains("db migrate", error.RenderMessage(), StringComparison.Ordinal);
            Assert.DoesNotContain(previous, error.RenderMessage(), StringComparison.Ordinal); // only what is missing

            Assert.Equal(ExitCodes.Success, await AdapterCli.RunAsync(["db", "migrate"], context));

            var ready = await client.GetAsync("/readyz");
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
            Assert.Null(JsonNode.Parse(await ready.Content.ReadAsStringAsync())!["reasons"]);
        });

        TestSecrets.AssertNotLogged(bed.Logs);
    }

    /// <summary>
    /// On the old schema the workers and jobs would fail with SQL errors, over and over, until <c>db migrate</c> ran:
    /// they wait for it instead, saying so once, and start by themselves once it has.
    /// </summary>
    [Fact]
    public async Task On_postgres_one_migration_behind_the_background_workers_and_jobs_wait_for_db_migrate_and_start_once_it_has_run()
    {
        await using var bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres, emptyDatabase: true);
        await MigrateToPreviousAsync(bed);
        var order = bed.Waldur.PlaceCreateOrder(bed.Offering, bed.ValidAttributes());
        var statements = new RecordedStatements();
        var probe = new ProbeJobRuns();
        var context = Context(bed, services => services
            .AddDatabaseInterceptor(DatabaseProvider.Postgres, statements)
            .AddSingleton(probe)
            .AddQuartz(quartz => ProbeJob.EverySecond(quartz)));
        await ServingAsync(context, async client =>
        {
            await Eventually.TrueAsync(() => bed.Logs.Events.Any(FromSchemaGate), because: "the workers say they wait");
            // Without the gate the inbox worker and the start-up poll would have run at once, and the probe job every
            // second since; the gate reads the schema again meanwhile.
            await Task.Delay(SchemaGate.RecheckInterval * 2);

            Assert.Equal("pending-provider", bed.Waldur.OrderState(order));
            Assert.Equal(0, bed.Waldur.Count("GET", "/api/marketplace-orders/"));
            Assert.Equal(0, probe.Runs);
            // Nothing but the schema's reads and the key ring the framework loads at start reached the database.
            Assert.DoesNotContain(statements.Texts, text => !IsSchemaOrKeyRing(text));
            Assert.DoesNotContain(bed.Logs.Events, e => e.Level >= LogEventLevel.Error && !FromStartupNotices(e));
            var waiting = Assert.Single(bed.Logs.Events, FromSchemaGate); // once, however often the schema is read again
            Assert.Equal(LogEventLevel.Warning, waiting.Level);
            Assert.Contains("db migrate", waiting.RenderMessage(), StringComparison.Ordinal);

            Assert.Equal(ExitCodes.Success, await AdapterCli.RunAsync(["db", "migrate"], context));

            await Eventually.TrueAsync(() => bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(30), "the start-up poll finds the order and the inbox worker completes it");
            await Eventually.TrueAsync(() => probe.Runs > 0, TimeSpan.FromSeconds(30), "the scheduler runs the jobs");
            Assert.Contains(statements.Texts, text => !IsSchemaOrKeyRing(text));
            Assert.Equal([LogEventLevel.Warning, LogEventLevel.Information], bed.Logs.Events.Where(FromSchemaGate).Select(e => e.Level));
        });

        TestSecrets.AssertNotLogged(bed.Logs);
    }

    [Fact]
    public async Task On_postgres_one_migration_behind_serve_stops_at_once_while_its_workers_wait_for_db_migrate()
    {
        await using var bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres, emptyDatabase: true);
        await MigrateToPreviousAsync(bed);
        // A wait that did not end with the stop would hold it this long, past the bound below.
        bed.Settings["Hosting:ShutdownTimeout"] = "00:10:00";

        var exitCode = await ServingAsync(Context(bed), async _ =>
            await Eventually.TrueAsync(() => bed.Logs.Events.Any(FromSchemaGate), because: "the workers wait")).WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal(ExitCodes.Success, exitCode);
        Assert.DoesNotContain(bed.Logs.Events, e => e.Level >= LogEventLevel.Error && !FromStartupNotices(e));
    }

    /// <summary>A build rolled back keeps serving: the migrations a newer build applied do not take it out of the Service.</summary>
    [Fact]
    public async Task On_postgres_a_database_migrated_by_a_newer_build_leaves_serve_ready_with_a_warning_and_its_workers_running()
    {
        await using var bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres, emptyDatabase: true);
        const string Newer = "99990101000000_FromANewerBuild";
        await WithContextAsync(bed, async db =>
        {
            await db.Database.MigrateAsync();
            var history = db.GetService<IHistoryRepository>();
            await db.Database.ExecuteSqlRawAsync(history.GetInsertScript(new HistoryRow(Newer, ProductInfo.GetVersion())));
        });
        var order = bed.Waldur.PlaceCreateOrder(bed.Offering, bed.ValidAttributes());
        await ServingAsync(Context(bed), async client =>
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
            await Eventually.TrueAsync(() => bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(30), "the workers run");
            Assert.Contains(bed.Logs.Events, e => e.Level == LogEventLevel.Warning && e.RenderMessage().Contains(Newer, StringComparison.Ordinal));
            Assert.DoesNotContain(bed.Logs.Events, e => e.Level >= LogEventLevel.Error);
            Assert.DoesNotContain(bed.Logs.Events, FromSchemaGate);
        });
    }

    [Fact]
    public async Task Serve_without_langflow_warns_once_at_start_that_orders_are_only_recorded_naming_the_setting()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        await ServingAsync(Context(bed), _ =>
        {
            var warning = Assert.Single(bed.Logs.Events, e => e.Level == LogEventLevel.Warning && FromStartupNotices(e) && e.RenderMessage().StartsWith("Langflow:BaseUrl", StringComparison.Ordinal));
            Assert.Contains("Langflow:BaseUrl", warning.RenderMessage(), StringComparison.Ordinal);
            Assert.Contains("recorded only", warning.RenderMessage(), StringComparison.Ordinal);
            Assert.Contains("no agents", warning.RenderMessage(), StringComparison.Ordinal);
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// An https public address is what makes cookies Secure and HSTS sent behind a proxy that ends TLS; without trusted
    /// forwarded headers the per-address limits count that proxy, which the operator is told once. Trusted from every
    /// connection (no proxy networks), a client bypassing the proxy picks its own address, which is said too.
    /// </summary>
    [Theory]
    [InlineData(false, null, "Web:PublicBaseUrl is https")]
    [InlineData(true, "10.244.0.0/16", null)]
    [InlineData(true, null, "Web:ForwardedProxyNetworks is empty")]
    public async Task Serve_with_an_https_public_address_warns_once_at_start_unless_forwarded_headers_are_trusted_from_proxy_networks(
        bool trustForwardedHeaders, string? proxyNetwork, string? warning)
    {
        await using var bed = await OrderTestBed.CreateAsync();
        bed.Settings["Web:PublicBaseUrl"] = "https://adapter.example.org/";
        bed.Settings["Web:TrustForwardedHeaders"] = trustForwardedHeaders ? "true" : "false";
        if (proxyNetwork is not null)
        {
            bed.Settings["Web:ForwardedProxyNetworks:0"] = proxyNetwork;
        }

        await ServingAsync(Context(bed), _ =>
        {
            var warnings = bed.Logs.Events.Where(e => e.Level == LogEventLevel.Warning && FromStartupNotices(e) && e.RenderMessage().Contains("Web:TrustForwardedHeaders", StringComparison.Ordinal)).ToList();
            if (warning is null)
            {
                Assert.Empty(warnings);
            }
            else
            {
                Assert.Contains(warning, Assert.Single(warnings).RenderMessage(), StringComparison.Ordinal);
            }

            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// The Waldur token goes to the broker as the STOMP passcode: a ws:// broker on another machine is said once at start,
    /// naming the setting. No offering is served, so no queue is listened to and the broker is never contacted.
    /// </summary>
    [Fact]
    public async Task Serve_warns_once_at_start_when_the_event_broker_would_get_the_token_in_clear_naming_the_setting()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        foreach (var key in bed.Settings.Keys.Where(k => k.StartsWith("Offerings:", StringComparison.Ordinal)).ToList())
        {
            bed.Settings.Remove(key);
        }

        bed.Settings["Events:Enabled"] = "true";
        bed.Settings["Events:WebSocketUrl"] = "ws://rabbitmq.example.org:15674/ws";

        await ServingAsync(Context(bed), _ =>
        {
            var warning = Assert.Single(bed.Logs.Events, e => e.Level == LogEventLevel.Warning && FromStartupNotices(e) && e.RenderMessage().Contains("unencrypted", StringComparison.Ordinal));
            Assert.Contains("Events:WebSocketUrl", warning.RenderMessage(), StringComparison.Ordinal);
            Assert.Contains("rabbitmq.example.org", warning.RenderMessage(), StringComparison.Ordinal);
            Assert.DoesNotContain(WaldurFake.Token, warning.RenderMessage(), StringComparison.Ordinal);
            return Task.CompletedTask;
        });

        TestSecrets.AssertNotLogged(bed.Logs);
    }

    /// <summary>Every link buyers get (console, one-time key, try page) is built on the public address: unset, it is this machine's.</summary>
    [Theory]
    [InlineData(null, true)]
    [InlineData("https://adapter.example.org/", false)]
    public async Task Serve_warns_at_start_when_the_public_address_is_not_set(string? publicBaseUrl, bool warned)
    {
        await using var bed = await OrderTestBed.CreateAsync();
        if (publicBaseUrl is not null)
        {
            bed.Settings["Web:PublicBaseUrl"] = publicBaseUrl;
        }

        bed.Settings["Web:TrustForwardedHeaders"] = "true";
        bed.Settings["Web:ForwardedProxyNetworks:0"] = "10.244.0.0/16";

        await ServingAsync(Context(bed), _ =>
        {
            var warnings = bed.Logs.Events.Where(e => e.Level == LogEventLevel.Warning && FromStartupNotices(e) && e.RenderMessage().Contains("Web:PublicBaseUrl is not set", StringComparison.Ordinal)).ToList();
            Assert.Equal(warned ? 1 : 0, warnings.Count);
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// Offerings that look served but are not are named at start: an offering Waldur does not know (its orders would never
    /// be found), and a credit price other than the plans' (Waldur credit turned into credits at the wrong rate).
    /// </summary>
    [Fact]
    public async Task Serve_names_at_start_an_offering_waldur_does_not_know_and_a_credit_price_other_than_the_plans()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        var unknown = Guid.NewGuid();
        bed.Settings["Offerings:0:Slug"] = "customer-support-agent"; // its plan prices each credit at 0.01
        bed.Settings["Offerings:1:Uuid"] = unknown.ToString();
        bed.Settings["Offerings:1:Slug"] = "research-agent";
        bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        bed.Settings["Credits:CreditPrice"] = "0.1";

        await ServingAsync(Context(bed), _ =>
        {
            var errors = bed.Logs.Events.Where(e => e.Level == LogEventLevel.Error && FromStartupNotices(e)).Select(e => e.RenderMessage()).ToList();
            Assert.Equal(3, errors.Count);
            Assert.Single(errors, m => m.Contains(unknown.ToString(), StringComparison.Ordinal) && m.Contains("never found", StringComparison.Ordinal));
            Assert.Single(errors, m => m.Contains("customer-support-agent", StringComparison.Ordinal) && m.Contains("chat_credits at 0.01", StringComparison.Ordinal) && m.Contains("Credits:CreditPrice", StringComparison.Ordinal));
            Assert.Single(errors, m => m.Contains("research-agent", StringComparison.Ordinal) && m.Contains("Credits:CreditPrice", StringComparison.Ordinal));
            return Task.CompletedTask;
        });
    }

    /// <summary>
    /// A Waldur that hangs delays the start by the one time limit of the offering reads, not by that limit per offering:
    /// with many offerings, serial reads would keep serve from listening past an orchestrator's start-up probe.
    /// </summary>
    [Fact]
    public async Task Serve_reads_its_offerings_from_waldur_at_start_together_not_one_after_another()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        var second = Guid.NewGuid();
        bed.Settings["Offerings:1:Uuid"] = second.ToString();
        bed.Settings["Offerings:1:Slug"] = "research-agent";
        var hanging = new[] { bed.Offering, second }.Select(o => bed.Waldur.Upstream.Hold("GET", $"/api/marketplace-provider-offerings/{o}/")).ToList();

        var serving = ServingAsync(Context(bed), _ => Task.CompletedTask);
        await Eventually.TrueAsync(() => hanging.Any(h => h.Arrived > 0), TimeSpan.FromSeconds(30), "serve reads an offering at start");
        // One after another, the second offering's read would wait for the first's 5-second limit.
        await Eventually.TrueAsync(() => hanging.All(h => h.Arrived > 0), TimeSpan.FromSeconds(3), "both offerings are read at once");
        hanging.ForEach(h => h.Release());

        Assert.Equal(ExitCodes.Success, await serving);
    }

    [Fact]
    public async Task Serve_names_at_start_a_matching_configuration_without_offering_errors_and_an_empty_one_with_a_warning()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        bed.Settings["Offerings:0:Slug"] = "customer-support-agent";
        bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        bed.Settings["Credits:CreditPrice"] = "0.01";

        await ServingAsync(Context(bed), _ =>
        {
            Assert.DoesNotContain(bed.Logs.Events, e => e.Level >= LogEventLevel.Error && FromStartupNotices(e));
            return Task.CompletedTask;
        });

        await using var empty = await OrderTestBed.CreateAsync();
        foreach (var key in empty.Settings.Keys.Where(k => k.StartsWith("Offerings:", StringComparison.Ordinal)).ToList())
        {
            empty.Settings.Remove(key);
        }

        await ServingAsync(Context(empty), _ =>
        {
            Assert.Single(empty.Logs.Events, e => e.Level == LogEventLevel.Warning && FromStartupNotices(e) && e.RenderMessage().StartsWith("Offerings is empty", StringComparison.Ordinal));
            return Task.CompletedTask;
        });
    }

    /// <summary>Stopping is how the server ends: an orchestrator must not read it as a failure.</summary>
    [Fact]
    public async Task Serve_stopped_exits_with_0()
    {
        await using var bed = await OrderTestBed.CreateAsync();

        Assert.Equal(ExitCodes.Success, await ServingAsync(Context(bed), _ => Task.CompletedTask));
    }

    private static bool FromStartupNotices(LogEvent e) => From(typeof(StartupNotices), e);

    private static bool FromSchemaGate(LogEvent e) => From(typeof(SchemaGate), e);

    private static bool From(Type source, LogEvent e) =>
        e.Properties.TryGetValue("SourceContext", out var context) && context.ToString() == $"\"{source.FullName}\"";

    /// <summary>The bed's settings and logs for both hosts a command may build: the command host and serve's web server.</summary>
    /// <param name="server">Services added to <c>serve</c> only, not to the other commands (<c>db migrate</c>).</param>
    private static CommandContext Context(OrderTestBed bed, Action<IServiceCollection>? server = null)
    {
        var configure = Configure(bed, bed.Logs);
        return new(new StringWriter(), new StringWriter(), configure, builder =>
        {
            configure(builder);
            server?.Invoke(builder.Services);
        });
    }

    private static Action<IHostApplicationBuilder> Configure(OrderTestBed bed, ILogEventSink logs) => builder =>
    {
        builder.Configuration.AddInMemoryCollection(bed.Settings);
        builder.Services.AddSingleton(logs);
    };

    /// <summary>Applies every migration but the newest, as the previous release's <c>db migrate</c> left it; returns the one before.</summary>
    private static async Task<string> MigrateToPreviousAsync(OrderTestBed bed)
    {
        var previous = "";
        await WithContextAsync(bed, async db =>
        {
            var migrations = db.Database.GetMigrations().ToList();
            previous = migrations[^2];
            await db.GetService<IMigrator>().MigrateAsync(previous);
        });
        return previous;
    }

    private static async Task WithContextAsync(OrderTestBed bed, Func<AdapterDbContext, Task> use)
    {
        using var host = AdapterHost.BuildCommandHost(null, Configure(bed, new CapturedLogs()));
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        await use(db);
    }

    /// <summary>Runs <c>serve</c> on a free loopback port until <paramref name="use"/> is done with it, once it answers; returns its exit code.</summary>
    private static async Task<int> ServingAsync(CommandContext context, Func<HttpClient, Task> use)
    {
        var port = LoopbackPorts.Free();
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        using var stop = new CancellationTokenSource();
        var serve = AdapterCli.RunAsync(["serve", "--urls", $"http://127.0.0.1:{port}"], context, stop.Token);
        try
        {
            await AnswersAsync(client, serve);
            await use(client);
        }
        finally
        {
            await stop.CancelAsync();
        }

        return await serve;
    }

    private static bool IsSchemaOrKeyRing(string statement) =>
        statement.Contains("__ef_migrations_history", StringComparison.Ordinal) || statement.Contains("data_protection_keys", StringComparison.Ordinal);

    /// <summary>Every statement the adapter's database contexts send.</summary>
    private sealed class RecordedStatements : DbCommandInterceptor
    {
        private readonly ConcurrentQueue<string> _texts = new();

        public IReadOnlyList<string> Texts => [.. _texts];

        public override ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default) =>
            Record(command, result);

        public override ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<object> result, CancellationToken cancellationToken = default) =>
            Record(command, result);

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default) =>
            Record(command, result);

        private ValueTask<T> Record<T>(DbCommand command, T result)
        {
            _texts.Enqueue(command.CommandText);
            return ValueTask.FromResult(result);
        }
    }

    public sealed class ProbeJobRuns
    {
        private int _runs;

        public int Runs => Volatile.Read(ref _runs);

        public void Ran() => Interlocked.Increment(ref _runs);
    }

    /// <summary>A scheduled job like the adapter's own, run every second: it runs only while the scheduler does.</summary>
    public sealed class ProbeJob(ProbeJobRuns runs) : IJob
    {
        private static readonly JobKey Key = new("probe", "tests");

        public static void EverySecond(IQuartzBuilder quartz)
        {
            quartz.AddJob<ProbeJob>(job => job.WithIdentity(Key).StoreDurably());
            quartz.AddTrigger(trigger => trigger.ForJob(Key).StartNow().WithSimpleSchedule(schedule => schedule.WithInterval(TimeSpan.FromSeconds(1)).RepeatForever()));
        }

        public ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
        {
            runs.Ran();
            return ValueTask.CompletedTask;
        }
    }

    private static Task AnswersAsync(HttpClient client, Task serve) => Eventually.TrueAsync(async () =>
    {
        Assert.False(serve.IsCompleted, "serve stopped by itself");
        try
        {
            return (await client.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }, TimeSpan.FromSeconds(60), "serve listens");
}
