using System.CommandLine;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>serve</c>: the web host and every background worker, until stopped.</summary>
public static class ServeCommand
{
    public static Command Build(CommandContext context)
    {
        var urls = new Option<string?>("--urls") { Description = "Addresses to listen on, e.g. http://0.0.0.0:8080 (default: ASPNETCORE_URLS or http://localhost:5000)." };
        var command = new Command("serve", "Run the web endpoints and the background workers (events, orders, jobs).") { urls };
        command.SetAction(async (parse, cancellationToken) =>
        {
            var args = parse.GetValue(urls) is { } value ? new[] { "--urls", value } : [];
            await using var app = AdapterHost.BuildServer(args, parse.GetValue(CommandContext.ConfigOption), context.ConfigureServer);
            await app.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
            await app.Services.LogStartupNoticesAsync(cancellationToken);
            // A background worker that failed stops the host: RunAsync then returns normally, or during the start throws
            // a cancellation nobody asked for; exit 0 would read as "completed" to an orchestrator restarting it. The
            // workers are looked up now: RunAsync disposes the host, which then answers nothing.
            var workers = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
            try
            {
                await app.RunAsync(cancellationToken);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return ExitCodes.Error;
            }

            return workers.Any(s => s.ExecuteTask?.IsFaulted == true)
                ? ExitCodes.Error
                : ExitCodes.Success;
        });
        return command;
    }
}
