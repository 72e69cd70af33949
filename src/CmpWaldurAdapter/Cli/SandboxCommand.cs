using System.CommandLine;
using CmpWaldurAdapter.Sandbox;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>sandbox</c>: the whole product on this machine, against emulated Waldur, Langflow and RAGFlow.</summary>
public static class SandboxCommand
{
    public static Command Build(CommandContext context)
    {
        var port = new Option<int>("--port")
        {
            Description = "Port of the adapter on 127.0.0.1 (0 picks a free one).",
            DefaultValueFactory = _ => 8080,
            Validators = { result => { if (result.GetValueOrDefault<int>() is < 0 or > 65535) { result.AddError("--port must be between 0 and 65535."); } } },
        };
        var data = new Option<string?>("--data-dir") { Description = "Keep the SQLite database here (default: a temporary folder removed on exit)." };
        var timeout = new Option<int>("--order-timeout")
        {
            Description = "Seconds to wait for the sample order to be done.",
            DefaultValueFactory = _ => 60,
            Validators = { result => { if (result.GetValueOrDefault<int>() < 1) { result.AddError("--order-timeout must be at least 1 second."); } } },
        };
        var command = new Command("sandbox",
            "Run the product with SQLite and in-process emulators of Waldur, Langflow and RAGFlow: registers the catalogue, places an order as a buyer, "
            + "waits until it is done, prints the buyer links, the try pages and a curl command with a working key, and serves until Ctrl-C.")
        {
            port, data, timeout,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                return await new SandboxRunner(context.Output, context.Error, context.ConfigureServer)
                    .RunAsync(new SandboxOptions(parse.GetValue(port), parse.GetValue(data), TimeSpan.FromSeconds(parse.GetValue(timeout))), cancellationToken);
            }
            catch (SandboxException exception)
            {
                await context.Error.WriteLineAsync("sandbox: " + exception.Message);
                return ExitCodes.Error;
            }
            catch (IOException exception) when (exception.InnerException is System.Net.Sockets.SocketException || exception.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
            {
                await context.Error.WriteLineAsync($"sandbox: cannot listen on port {parse.GetValue(port)} ({exception.Message}); choose another with --port.");
                return ExitCodes.Error;
            }
        });
        return command;
    }
}
