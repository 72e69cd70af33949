using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Reconciliation;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>reconcile</c>: find and repair drift between Waldur, the adapter and the upstreams.</summary>
public static class ReconcileCommand
{
    public static Command Build(CommandContext context)
    {
        var offering = new Option<string?>("--offering") { Description = "Only this offering (catalogue slug or Waldur offering UUID); orphans are looked for only without it." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Report the drift, change nothing." };
        var prune = new Option<bool>("--prune") { Description = "Delete orphans (cmp-* Langflow users, projects, flows and RAGFlow datasets of no live subscription)." };
        var command = new Command("reconcile",
            "Compare Waldur orders and usage, the adapter's subscriptions, Langflow and RAGFlow; re-feed stuck orders, re-provision missing tenants, "
            + "re-report drifted usage, name organizations recorded without a name, list orphans (delete them with --prune). Exit 0 when clean, 1 when drift remains, 2 on error.")
        {
            offering, dryRun, prune,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(context, parse, parse.GetValue(offering), parse.GetValue(dryRun), parse.GetValue(prune), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(CommandContext context, ParseResult parse, string? offering, bool dryRun, bool prune, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        Guid? offeringUuid = null;
        if (offering is not null)
        {
            var served = host.Services.GetRequiredService<ServedOfferings>();
            offeringUuid = Guid.TryParse(offering, out var parsed) && served.Serves(parsed) ? parsed : served.Offerings.FirstOrDefault(o => o.Slug == offering)?.Uuid;
            if (offeringUuid is null)
            {
                await context.Error.WriteLineAsync($"reconcile: --offering '{offering}' is not a served offering (served: {string.Join(", ", served.Offerings.Select(o => o.Slug))}).");
                return ExitCodes.Error;
            }
        }

        var json = parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json;
        using var bar = TerminalProgressBar.ForConsole(context, enabled: !json);
        ReconcileReport report;
        try
        {
            report = await host.Services.GetRequiredService<Reconciler>().RunAsync(new ReconcileRequest(offeringUuid, dryRun, prune), bar, cancellationToken);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested
            && (RagflowException.Find(exception) is not null || Waldur.Api.UpstreamFailures.IsTransient(exception)))
        {
            // An upstream that cannot be read makes the comparison meaningless: nothing is judged, nothing changed after this point.
            bar?.Dispose();
            var detail = RagflowException.Find(exception) is { } ragflow ? $"RAGFlow answered code {ragflow.Code}: {ragflow.Message}" : Waldur.Api.UpstreamFailures.Describe(exception);
            await context.Error.WriteLineAsync($"reconcile: an upstream could not be read ({detail}).");
            return ExitCodes.Error;
        }

        bar?.Dispose();

        if (json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new
            {
                dryRun,
                prune,
                clean = report.Clean,
                @checked = report.Checked,
                summary = Summary(report).Select(s => new { kind = s.Kind, found = s.Found, repaired = s.Repaired, remaining = s.Remaining }),
                drifts = report.Drifts,
            }, CliJson.Options));
            return report.Clean ? ExitCodes.Success : ExitCodes.Unfinished;
        }

        await context.Output.WriteLineAsync("Checked: " + string.Join(", ", report.Checked) + ".");
        if (report.Drifts.Count == 0)
        {
            await context.Output.WriteLineAsync("No drift: Waldur, the adapter and the upstreams agree.");
            return ExitCodes.Success;
        }

        await Table.WriteAsync(context.Output, ["DRIFT", "FOUND", "REPAIRED", "REMAINING"],
            Summary(report).Select(s => new[] { s.Kind.ToString(), Number(s.Found), Number(s.Repaired), Number(s.Remaining) }));
        await context.Output.WriteLineAsync();
        await Table.WriteAsync(context.Output, ["DRIFT", "SUBJECT", "OUTCOME", "DETAIL"],
            report.Drifts.Select(d => new[] { d.Kind.ToString(), d.Subject, d.Outcome.ToString(), d.Error is null ? d.Detail : $"{d.Detail} ({d.Error})" }));
        await context.Output.WriteLineAsync(report.Clean
            ? "Every drift was repaired."
            : dryRun ? "Dry run: nothing was changed." : report.Drifts.Any(d => d.Outcome == DriftOutcome.Found) && !prune ? "Drift remains (orphans are deleted only with --prune)." : "Drift remains.");
        return report.Clean ? ExitCodes.Success : ExitCodes.Unfinished;
    }

    private static IEnumerable<(DriftKind Kind, int Found, int Repaired, int Remaining)> Summary(ReconcileReport report) =>
        report.Drifts.GroupBy(d => d.Kind).OrderBy(g => g.Key).Select(g => (g.Key, g.Count(), g.Count(d => !d.Remains), g.Count(d => d.Remains)));

    private static string Number(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>A one-line progress bar on standard error, drawn only when both output streams are a terminal.</summary>
public sealed class TerminalProgressBar : IProgress<ReconcileProgress>, IDisposable
{
    private const int Width = 30;
    private readonly TextWriter _writer;
    private bool _drawn;

    private TerminalProgressBar(TextWriter writer) => _writer = writer;

    /// <summary>A bar for the process's console, or null when output is redirected, JSON, or not the console.</summary>
    public static TerminalProgressBar? ForConsole(CommandContext context, bool enabled) =>
        enabled && ReferenceEquals(context.Output, Console.Out) && !Console.IsOutputRedirected && !Console.IsErrorRedirected
            ? new TerminalProgressBar(Console.Error)
            : null;

    public void Report(ReconcileProgress value)
    {
        var filled = value.Steps == 0 ? Width : Width * value.Step / value.Steps;
        _writer.Write($"\r[{new string('#', filled)}{new string('.', Width - filled)}] {value.Step}/{value.Steps} {value.Activity,-20}");
        _drawn = true;
    }

    public void Dispose()
    {
        if (_drawn)
        {
            _writer.Write("\r" + new string(' ', Width + 30) + "\r");
            _drawn = false;
        }
    }
}
