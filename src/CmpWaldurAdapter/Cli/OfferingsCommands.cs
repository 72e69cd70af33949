using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;

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
        try
        {
            entries = file is null
                ? [.. host.Services.GetRequiredService<OfferingCatalogue>().Entries.OrderBy(e => e.Slug, StringComparer.Ordinal)]
                : [CatalogueReader.Parse(await File.ReadAllTextAsync(file.FullName, cancellationToken), file.FullName)];
        }
        catch (CatalogueException exception)
        {
            foreach (var problem in exception.Problems)
            {
                await context.Error.WriteLineAsync(problem);
            }

            return ExitCodes.Error;
        }
        catch (IOException exception)
        {
            await context.Error.WriteLineAsync(exception.Message);
            return ExitCodes.Error;
        }

        // Demo flow ids are stored in the adapter's database (the embedded one is migrated here, as by every command).
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        var results = await host.Services.GetRequiredService<OfferingRegistrar>().RegisterAsync(entries, dryRun, cancellationToken);

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
}
