using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog.Core;
using Serilog.Events;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

/// <summary><c>serve</c> as operators run it (in-process, through the command line), checked while it runs.</summary>
public sealed class ServeStartTests
{
    [Fact]
    public async Task On_postgres_one_migration_behind_serve_is_alive_but_not_ready_and_says_to_run_db_migrate_until_it_has_run()
    {
        await using var bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres);
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
            // One line at start; the framework's line for each failed probe and the workers' SQL failures on the old
            // schema come from elsewhere.
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

    /// <summary>A build rolled back keeps serving: the migrations a newer build applied do not take it out of the Service.</summary>
    [Fact]
    public async Task On_postgres_a_database_migrated_by_a_newer_build_leaves_serve_ready_with_a_warning()
    {
        await using var bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres);
        const string Newer = "99990101000000_FromANewerBuild";
        await WithContextAsync(bed, async db =>
        {
            await db.Database.MigrateAsync();
            var history = db.GetService<IHistoryRepository>();
            await db.Database.ExecuteSqlRawAsync(history.GetInsertScript(new HistoryRow(Newer, ProductInfo.GetVersion())));
        });
        await ServingAsync(Context(bed), async client =>
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
            Assert.Contains(bed.Logs.Events, e => e.Level == LogEventLevel.Warning && e.RenderMessage().Contains(Newer, StringComparison.Ordinal));
            Assert.DoesNotContain(bed.Logs.Events, e => e.Level >= LogEventLevel.Error);
        });
    }

    [Fact]
    public async Task Serve_without_langflow_warns_once_at_start_that_orders_are_only_recorded_naming_the_setting()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        await ServingAsync(Context(bed), _ =>
        {
            var warning = Assert.Single(bed.Logs.Events, e => e.Level == LogEventLevel.Warning && FromStartupNotices(e));
            Assert.Contains("Langflow:BaseUrl", warning.RenderMessage(), StringComparison.Ordinal);
            Assert.Contains("recorded only", warning.RenderMessage(), StringComparison.Ordinal);
            Assert.Contains("no agents", warning.RenderMessage(), StringComparison.Ordinal);
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

    private static bool FromStartupNotices(LogEvent e) =>
        e.Properties.TryGetValue("SourceContext", out var source) && source.ToString() == $"\"{typeof(StartupNotices).FullName}\"";

    /// <summary>The bed's settings and logs for both hosts a command may build: the command host and serve's web server.</summary>
    private static CommandContext Context(OrderTestBed bed)
    {
        var configure = Configure(bed, bed.Logs);
        return new(new StringWriter(), new StringWriter(), configure, configure);
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
