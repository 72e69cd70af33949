using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>offerings register</c>: make Waldur hold exactly the catalogue's offerings.</summary>
public static class OfferingsCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Build(CommandContext context)
    {
        var file = new Option<FileInfo?>("--file") { Description = "Register the offering of this catalogue file." };
        var all = new Option<bool>("--all") { Description = "Register every offering of the catalogue." };
        var dryRun = new Option<bool>("--dry-run") { Description = "Show what would change in Waldur, change nothing." };
        var register = new Command("register", "Create or update offerings in Waldur (category, order form, components, plan, prices) and activate them. Idempotent.")
        {
            file, all, dryRun,
        };
        register.Validators.Add(result =>
        {
            if ((result.GetValue(file) is null) == !result.GetValue(all))
            {
                result.AddError("Choose exactly one of --file FILE or --all.");
            }
        });
        register.SetAction((parse, cancellationToken) => RegisterAsync(context, parse, parse.GetValue(file), parse.GetValue(dryRun), cancellationToken));
        return new Command("offerings", "The marketplace offerings in Waldur.") { register };
    }

    private static async Task<int> RegisterAsync(CommandContext context, ParseResult parse, FileInfo? file, bool dryRun, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        IReadOnlyList<CatalogueEntry> entries;
        OfferingRegistrar registrar;
        try
        {
            var catalogue = host.Services.GetRequiredService<OfferingCatalogue>();
            entries = file is null
                ? [.. catalogue.Entries.OrderBy(e => e.Slug, StringComparer.Ordinal)]
                : [await ReadFileAsync(catalogue, file, cancellationToken)];
            registrar = host.Services.GetRequiredService<OfferingRegistrar>();
            // Every local file is read before Waldur is asked anything: nothing is created or activated without its demo flow.
            registrar.CheckLocalFiles(entries);
        }
        catch (CatalogueException exception)
        {
            foreach (var problem in exception.Problems)
            {
                await context.Error.WriteLineAsync(problem);
            }

            await context.Error.WriteLineAsync("Nothing was changed in Waldur.");
            return ExitCodes.Error;
        }
        catch (Exception exception) when (exception is IOException or UnauthorizedAccessException or FlowTemplateException)
        {
            await context.Error.WriteLineAsync($"register: {exception.Message} Nothing was changed in Waldur.");
            return ExitCodes.Error;
        }

        // Demo flow ids are stored in the adapter's database (the embedded one is migrated here, as by every command).
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        IReadOnlyList<RegisteredOffering> results;
        try
        {
            results = await registrar.RegisterAsync(entries, dryRun, cancellationToken);
        }
        catch (FlowTemplateException exception)
        {
            // Read once already above, so only a file changed meanwhile gets here: say Waldur may hold part of the run.
            await context.Error.WriteLineAsync($"register: {exception.Message} Waldur may already hold part of this registration; "
                + "fix the file and run the command again (it changes only what still differs).");
            return ExitCodes.Error;
        }

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { dryRun, changed = results.Any(r => r.Changed), offerings = results }, CliJson.Options));
            return ExitCodes.Success;
        }

        await Table.WriteAsync(context.Output, ["OFFERING", "WALDUR UUID", dryRun ? "WOULD CHANGE" : "CHANGES"],
            results.Select(r => new[] { r.Slug, r.Uuid?.ToString() ?? "(new)", r.Changed ? string.Join("; ", r.Changes) : "unchanged" }));
        await context.Output.WriteLineAsync(results.Any(r => r.Changed)
            ? dryRun ? "Dry run: nothing was changed in Waldur." : "Waldur now matches the catalogue."
            : "Nothing to change: Waldur already matches the catalogue.");
        if (!dryRun)
        {
            await context.Output.WriteLineAsync("Serve these offerings with this configuration:");
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { Offerings = results.Where(r => r.Uuid is not null).Select(r => new { r.Uuid, r.Slug }) }, Indented));
        }

        return ExitCodes.Success;
    }

    /// <summary>
    /// The entry of a catalogue file, which must be in the catalogue folder: <c>serve</c> knows only the offerings there,
    /// and the demo flow and flow template are read from there (at registration and at every order).
    /// </summary>
    private static async Task<CatalogueEntry> ReadFileAsync(OfferingCatalogue catalogue, FileInfo file, CancellationToken cancellationToken)
    {
        var folder = Path.TrimEndingDirectorySeparator(Path.GetFullPath(catalogue.Directory));
        if (!string.Equals(Path.TrimEndingDirectorySeparator(file.DirectoryName ?? string.Empty), folder, StringComparison.Ordinal))
        {
            throw new CatalogueException([$"{file.FullName}: not in the catalogue folder {folder} (Catalogue:Directory). "
                + "Copy it there, with its flow template and demo flow, and register it from there: serve reads offerings and their flows only from that folder."]);
        }

        var entry = CatalogueReader.Parse(await File.ReadAllTextAsync(file.FullName, cancellationToken), file.FullName);
        var missing = OfferingCatalogue.MissingTemplates(catalogue.Directory, entry, file.FullName).ToList();
        return missing.Count == 0 ? entry : throw new CatalogueException(missing);
    }
}
