using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Cli;

/// <summary>Runs <c>cmp-adapter</c> commands in-process, with the parser and exit codes operators get.</summary>
public sealed class CliTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync(emptyDatabase: true); // as an operator finds it before db migrate

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var context = new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(_bed.Settings);
            builder.Services.AddSingleton<ILogEventSink>(_bed.Logs);
            _bed.UseProvisioner(builder.Services);
        });
        var exit = await AdapterCli.RunAsync(args, context);
        return (exit, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData]
    [InlineData("serve")]
    [InlineData("db")]
    [InlineData("db", "migrate")]
    [InlineData("db", "rewrap-key-ring")]
    [InlineData("orders")]
    [InlineData("orders", "list")]
    [InlineData("orders", "process")]
    public async Task Every_command_explains_itself(params string[] command)
    {
        var (exit, output, _) = await RunAsync([.. command, "--help"]);

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains("Usage:", output);
        Assert.Contains(string.Join(' ', command), output);
    }

    [Fact]
    public async Task Serve_with_a_reconnect_backoff_that_cannot_work_exits_with_2_naming_it()
    {
        var settings = new Dictionary<string, string?>(_bed.Settings)
        {
            ["Events:Enabled"] = "true",
            ["Events:WebSocketUrl"] = $"ws://127.0.0.1:{LoopbackPorts.Free()}/ws",
            ["Events:InitialReconnectDelay"] = "00:00:00",
        };

        var (exit, error) = await ServeAsync(settings, _ => { });

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("InitialReconnectDelay", error);
    }

    [Fact]
    public async Task Serve_with_a_bad_knowledge_source_setting_names_it_once_as_a_configuration_error()
    {
        var settings = new Dictionary<string, string?>(_bed.Settings) { ["Knowledge:Notion:PageSize"] = "0" };

        var (exit, error) = await ServeAsync(settings, _ => { });

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Single(Regex.Matches(error, "Configuration error"));
        Assert.Single(Regex.Matches(error, "The field PageSize must be"));
    }

    [Fact]
    public async Task Serve_with_bad_settings_in_two_sections_names_both_as_one_configuration_error()
    {
        var settings = new Dictionary<string, string?>(_bed.Settings) { ["Handoff:MaxRetryDelay"] = "00:00:10", ["Orders:RetryInitial"] = "00:10:00", ["Orders:RetryMaximum"] = "00:01:00" };

        var (exit, error) = await ServeAsync(settings, _ => { });

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Single(Regex.Matches(error, "Configuration error"));
        Assert.Contains("Handoff:MaxRetryDelay must be at least Handoff:FirstRetryDelay", error);
        Assert.Contains("Orders:RetryMaximum must be at least Orders:RetryInitial", error);
        Assert.DoesNotContain("   at ", error);
    }

    /// <summary>Runs of 10 minutes, 4 images a request: one request may outlast the 15-minute hold that pays for it.</summary>
    private const string HoldShorterThanItsWork = "Credits:ReservationTimeout must be longer than Images:MaxImagesPerRequest times Chat:RunTimeout";

    [Fact]
    public async Task Serve_with_a_credit_hold_shorter_than_the_runs_it_pays_for_names_both_once_as_a_configuration_error()
    {
        var settings = new Dictionary<string, string?>(_bed.Settings) { ["Chat:RunTimeout"] = "00:10:00" };

        var (exit, error) = await ServeAsync(settings, _ => { });

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Single(Regex.Matches(error, "Configuration error"));
        Assert.Single(Regex.Matches(error, Regex.Escape(HoldShorterThanItsWork)));
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public async Task A_command_using_the_ledger_with_a_credit_hold_shorter_than_the_runs_it_pays_for_names_both_as_a_configuration_error()
    {
        _bed.Settings["Chat:RunTimeout"] = "00:10:00";

        var (exit, _, error) = await RunAsync("credits", "balance", "--customer", Guid.NewGuid().ToString());

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("Configuration error: " + HoldShorterThanItsWork, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Theory]
    [InlineData(200)] // while the server is still starting
    [InlineData(3000)] // once it serves
    public async Task Serve_stopped_by_a_failed_background_worker_exits_with_2(int failAfterMilliseconds)
    {
        var (exit, _) = await ServeAsync(_bed.Settings, services => services.AddHostedService(_ => new FailingWorker(failAfterMilliseconds)));

        Assert.Equal(ExitCodes.Error, exit);
    }

    private async Task<(int Exit, string Error)> ServeAsync(IReadOnlyDictionary<string, string?> settings, Action<IServiceCollection> services)
    {
        var error = new StringWriter();
        var context = new CommandContext(new StringWriter(), error, configureServer: builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.Services.AddSingleton<ILogEventSink>(_bed.Logs);
            services(builder.Services);
        });
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60)); // a server that never stops fails the test
        var exit = await AdapterCli.RunAsync(["serve", "--urls", "http://127.0.0.1:0"], context, stop.Token);
        Assert.False(stop.IsCancellationRequested, "serve stopped by itself");
        return (exit, error.ToString());
    }

    private sealed class FailingWorker(int failAfterMilliseconds) : Microsoft.Extensions.Hosting.BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await Task.Delay(failAfterMilliseconds, stoppingToken);
            throw new InvalidOperationException("the worker failed");
        }
    }

    [Fact]
    public async Task Bad_arguments_exit_with_2_and_say_why()
    {
        var (exit, _, error) = await RunAsync("orders", "process", "--order", "not-a-uuid");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("not-a-uuid", error);
        Assert.Contains("--help", error);
    }

    [Fact]
    public async Task Db_migrate_applies_the_schema_once()
    {
        var first = await RunAsync("db", "migrate");
        var second = await RunAsync("db", "migrate");

        Assert.Equal(ExitCodes.Success, first.Exit);
        Assert.Matches(@"Applied [1-9][0-9]* migration\(s\): \d+_Initial", first.Output);
        Assert.Equal(ExitCodes.Success, second.Exit);
        Assert.Contains("up to date", second.Output);
    }

    [Fact]
    public async Task Orders_list_shows_what_waits_for_the_provider_as_a_table_or_json()
    {
        await RunAsync("db", "migrate");
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());

        var table = await RunAsync("orders", "list");
        var json = await RunAsync("orders", "list", "--output", "json");

        Assert.Equal(ExitCodes.Success, table.Exit);
        Assert.Contains("1 order(s) wait for the provider", table.Output);
        Assert.Contains(order.ToString(), table.Output);
        Assert.Contains("pending-provider", table.Output);
        var rows = JsonNode.Parse(json.Output)!.AsArray();
        Assert.Equal(order.ToString(), rows.Single()!["uuid"]!.GetValue<string>());
        Assert.Equal("not seen", rows.Single()!["progress"]!.GetValue<string>());
    }

    [Fact]
    public async Task Orders_process_runs_the_pipeline_now_and_reports_each_outcome()
    {
        var good = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        var bad = _bed.Waldur.PlaceCreateOrder(_bed.Offering, []);

        var (exit, output, _) = await RunAsync("orders", "process");
        var single = await RunAsync("orders", "process", "--order", good.ToString(), "--output", "json");

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains($"{good}  Completed", output);
        Assert.Contains($"{bad}  Rejected", output);
        Assert.Equal("done", _bed.Waldur.OrderState(good));
        Assert.Equal("rejected", _bed.Waldur.OrderState(bad));
        Assert.Equal("Ignored", JsonNode.Parse(single.Output)![0]!["outcome"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_unreachable_waldur_is_a_clear_error_not_a_stack_trace()
    {
        _bed.Settings["Waldur:BaseUrl"] = "http://127.0.0.1:9/";
        _bed.Settings["Waldur:RetryAttempts"] = "0";

        var (exit, output, error) = await RunAsync("orders", "list");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("list:", error);
        Assert.DoesNotContain("   at ", error);
        Assert.Equal(string.Empty, output);
    }

    [Fact]
    public async Task Missing_configuration_is_reported_by_name()
    {
        _bed.Settings.Remove("Waldur:Token");

        var (exit, _, error) = await RunAsync("orders", "list");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("Configuration error", error);
        Assert.Contains("Token", error);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_configuration_file_that_is_missing_or_not_json_is_one_line_and_exit_2(bool exists)
    {
        var file = Path.Combine(Path.GetTempPath(), $"cmp-adapter-{Guid.NewGuid():N}.json");
        if (exists)
        {
            await File.WriteAllTextAsync(file, "{ \"Waldur\": ");
        }

        try
        {
            var (exit, _, error) = await RunAsync("orders", "list", "--config", file);

            Assert.Equal(ExitCodes.Error, exit);
            Assert.Contains($"list: The configuration file {file} cannot be used", error);
            Assert.DoesNotContain("   at ", error);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task A_command_stopped_half_way_exits_130_so_scripts_do_not_take_it_for_done()
    {
        using var stopped = new CancellationTokenSource();
        await stopped.CancelAsync();
        var context = new CommandContext(new StringWriter(), new StringWriter(), builder => builder.Configuration.AddInMemoryCollection(_bed.Settings));

        Assert.Equal(ExitCodes.Interrupted, await AdapterCli.RunAsync(["db", "migrate"], context, stopped.Token));
    }
}
