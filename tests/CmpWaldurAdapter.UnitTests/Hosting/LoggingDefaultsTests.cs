using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Serilog.Core;

namespace CmpWaldurAdapter.UnitTests.Hosting;

public sealed class LoggingDefaultsTests
{
    [Fact]
    public void Without_settings_the_adapter_logs_its_own_information_but_not_every_framework_step()
    {
        var (logs, factory) = Logging([]);

        Log(factory, "CmpWaldurAdapter.Chat.ChatService", "own line");
        Log(factory, "Microsoft.EntityFrameworkCore.Database.Command", "Executed DbCommand");
        Log(factory, "Microsoft.AspNetCore.Routing.EndpointMiddleware", "Executing endpoint");
        Log(factory, "System.Net.Http.HttpClient.langflow.LogicalHandler", "Start processing HTTP request");
        Log(factory, "Quartz.Core.QuartzSchedulerThread", "Batch acquisition of 0 triggers");
        Log(factory, "Microsoft.Hosting.Lifetime", "Application started");
        factory.CreateLogger("Microsoft.EntityFrameworkCore.Database.Command").LogWarning("slow command");

        Assert.Equal(["own line", "Application started", "slow command"], logs.Events.Select(e => e.RenderMessage()));
    }

    [Fact]
    public void A_configured_default_level_alone_keeps_the_framework_quiet()
    {
        // The chart always sets Serilog:MinimumLevel:Default.
        var (logs, factory) = Logging(new() { ["Serilog:MinimumLevel:Default"] = "Information" });

        Log(factory, "CmpWaldurAdapter.Chat.ChatService", "own line");
        Log(factory, "Microsoft.EntityFrameworkCore.Database.Command", "Executed DbCommand");
        Log(factory, "System.Net.Http.HttpClient.handoff-webhook.ClientHandler", "Sending HTTP request https://hooks.example.com/services/T0/B0/secret");

        Assert.Equal(["own line"], logs.Events.Select(e => e.RenderMessage()));
    }

    [Fact]
    public void Configured_levels_apply_over_the_defaults_source_by_source()
    {
        var (logs, factory) = Logging(new()
        {
            ["Serilog:MinimumLevel:Default"] = "Warning",
            ["Serilog:MinimumLevel:Override:Microsoft.EntityFrameworkCore"] = "Information",
        });

        Log(factory, "CmpWaldurAdapter.Chat.ChatService", "own line");
        Log(factory, "Microsoft.Hosting.Lifetime", "Application started");
        Log(factory, "Microsoft.EntityFrameworkCore.Database.Command", "Executed DbCommand");
        Log(factory, "Microsoft.AspNetCore.Routing.EndpointMiddleware", "Executing endpoint");

        Assert.Equal(["Application started", "Executed DbCommand"], logs.Events.Select(e => e.RenderMessage()));
    }

    private static void Log(ILoggerFactory factory, string category, string message) =>
        factory.CreateLogger(category).LogInformation("{Message:l}", message);

    private static (CapturedLogs Logs, ILoggerFactory Factory) Logging(Dictionary<string, string?> settings)
    {
        var logs = new CapturedLogs();
        var services = new ServiceCollection();
        services.AddSingleton<ILogEventSink>(logs);
        services.AddAdapterLogging(new ConfigurationBuilder().AddInMemoryCollection(settings).Build(), toStandardError: false);
        return (logs, services.BuildServiceProvider().GetRequiredService<ILoggerFactory>());
    }
}
