using System.CommandLine;
using CmpWaldurAdapter.Persistence;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>db migrate</c>: applies the versioned schema migrations of the configured database.</summary>
public static class DbCommands
{
    public static Command Build(CommandContext context)
    {
        var migrate = new Command("migrate", "Apply pending database migrations (run once per release, before the new version serves).");
        migrate.SetAction(async (parse, cancellationToken) =>
        {
            using var host = context.BuildHost(parse);
            var applied = await host.Services.MigrateAsync(cancellationToken);
            if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
            {
                await context.Output.WriteLineAsync(System.Text.Json.JsonSerializer.Serialize(new { applied }, CliJson.Options));
                return ExitCodes.Success;
            }

            await context.Output.WriteLineAsync(applied.Count == 0
                ? "The database schema is up to date."
                : $"Applied {applied.Count} migration(s): {string.Join(", ", applied)}");
            return ExitCodes.Success;
        });
        return new Command("db", "Database maintenance.") { migrate };
    }
}
