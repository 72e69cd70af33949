using System.CommandLine;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Cli;

/// <summary>The <c>cmp-adapter</c> command line: nouns, then verbs, each with --help.</summary>
public static class AdapterCli
{
    public static RootCommand Build(CommandContext context)
    {
        var root = new RootCommand("CmpWaldurAdapter: the service-provider side of an AI-agent marketplace on Waldur.")
        {
            CommandContext.ConfigOption,
            CommandContext.OutputOption,
            ServeCommand.Build(context),
            DbCommands.Build(context),
            OrdersCommands.Build(context),
            OfferingsCommands.Build(context),
            CreditsCommands.Build(context),
            UsageCommands.Build(context),
            SubscriptionsCommands.Build(context),
            KeysCommands.Build(context),
            ReconcileCommand.Build(context),
            SandboxCommand.Build(context),
        };
        return root;
    }

    public static async Task<int> RunAsync(string[] args, CommandContext context, CancellationToken cancellationToken = default)
    {
        var parse = Build(context).Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var error in parse.Errors)
            {
                await context.Error.WriteLineAsync(error.Message);
            }

            await context.Error.WriteLineAsync("Run with --help to see the usage.");
            return ExitCodes.Error;
        }

        try
        {
            return await parse.InvokeAsync(new InvocationConfiguration { Output = context.Output, Error = context.Error, EnableDefaultExceptionHandler = false }, cancellationToken);
        }
        catch (Exception exception) when (ConfigurationFailures(exception) is { } failures)
        {
            await context.Error.WriteLineAsync("Configuration error: " + string.Join("; ", failures));
            return ExitCodes.Error;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping is how the server ends; any other command stopped half-way must not look done to a script.
            return parse.CommandResult.Command.Name is "serve" or "sandbox" ? ExitCodes.Success : ExitCodes.Interrupted;
        }
        catch (Exception exception) when (exception is HttpRequestException or Refit.ApiExceptionBase or TimeoutException or InvalidOperationException or System.Data.Common.DbException)
        {
            await context.Error.WriteLineAsync($"{parse.CommandResult.Command.Name}: {Waldur.Api.UpstreamFailures.Describe(exception)}");
            return ExitCodes.Error;
        }
        catch (Hosting.ConfigurationFileException exception)
        {
            // One line, not a stack trace; any other failure of a command keeps its trace.
            await context.Error.WriteLineAsync($"{parse.CommandResult.Command.Name}: {exception.Message}");
            return ExitCodes.Error;
        }
    }

    /// <summary>What a configuration refused: one section's failures, or several at once (start-up validation refuses every bad section together).</summary>
    private static IEnumerable<string>? ConfigurationFailures(Exception exception) => exception switch
    {
        OptionsValidationException one => one.Failures,
        AggregateException all when all.InnerExceptions.All(inner => inner is OptionsValidationException) =>
            all.InnerExceptions.Cast<OptionsValidationException>().SelectMany(inner => inner.Failures),
        _ => null,
    };
}
