using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Usage;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>usage report</c>: compares the ledger's month-to-date totals with Waldur and sends what differs.</summary>
public static class UsageCommands
{
    public static Command Build(CommandContext context)
    {
        var period = new Option<BillingPeriod?>("--period")
        {
            Description = "Report only this month (YYYY-MM). Without it: the current and the previous month.",
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : null;
                if (BillingPeriod.TryParse(text, out var parsed))
                {
                    return parsed;
                }

                result.AddError($"--period must be a month as YYYY-MM, not '{text}'.");
                return null;
            },
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "Show what would be sent; send nothing." };
        var report = new Command("report", "Compare month-to-date credit totals per resource and component with Waldur, and send the ones that differ (set_usage).") { period, dryRun };
        report.SetAction((parse, cancellationToken) => ReportAsync(context, parse, parse.GetValue(period), parse.GetValue(dryRun), cancellationToken));
        return new Command("usage", "Usage reported to Waldur.") { report };
    }

    private static async Task<int> ReportAsync(CommandContext context, ParseResult parse, BillingPeriod? period, bool dryRun, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        var report = await host.Services.GetRequiredService<UsageReporter>().ReportAsync(period, dryRun, cancellationToken);

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { dryRun, rows = report.Rows }, CliJson.Options));
        }
        else
        {
            var lead = report.Rows.Count == 0
                ? "No usage to report."
                : $"{(dryRun ? "Dry run: " : string.Empty)}{report.Rows.Count(r => r.Action is UsageAction.Posted or UsageAction.WouldPost)} total(s) {(dryRun ? "would be" : "were")} sent, {report.Rows.Count(r => r.Action == UsageAction.Unchanged)} unchanged.";
            await context.Output.WriteLineAsync(lead);
            var busy = report.Rows.Count(r => r.Action == UsageAction.Busy);
            if (busy > 0)
            {
                await context.Output.WriteLineAsync($"{busy} total(s) not sent: another report of the same resource was under way (another replica's run or a Terminate order's final report); run again.");
            }

            await Table.WriteAsync(context.Output, ["RESOURCE", "PERIOD", "COMPONENT", "LEDGER", "WALDUR", "ACTION", "DETAIL"],
                report.Rows.Select(r => new[]
                {
                    r.ResourceUuid.ToString(), r.Period, r.Component, Amount(r.Ours), r.Waldur is { } w ? Amount(w) : "-", r.Action.ToString(), r.Detail,
                }));
        }

        return report.Unfinished ? ExitCodes.Unfinished : ExitCodes.Success;
    }

    private static string Amount(decimal value) => UsageAmounts.Format(value).ToString(CultureInfo.InvariantCulture);
}
