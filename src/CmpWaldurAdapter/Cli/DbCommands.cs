using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.KeyRing;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Cli;

/// <summary>
/// <c>db migrate</c>: applies the versioned schema migrations of the configured database.
/// <c>db rewrap-key-ring</c>: encrypts every stored Data Protection key with the current key-encryption key.
/// </summary>
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
                await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { applied }, CliJson.Options));
                return ExitCodes.Success;
            }

            await context.Output.WriteLineAsync(applied.Count == 0
                ? "The database schema is up to date."
                : $"Applied {applied.Count} migration(s): {string.Join(", ", applied)}");
            return ExitCodes.Success;
        });

        var rewrap = new Command(
            "rewrap-key-ring",
            "Encrypt every stored Data Protection key with DataProtection:KeyEncryptionKey: keys stored in plaintext (made before it was set) " +
            "and keys under one of DataProtection:PreviousKeyEncryptionKeys. Key ids and secrets do not change, so it is safe while replicas serve; " +
            "afterwards a previous key-encryption key can be removed.");
        rewrap.SetAction((parse, cancellationToken) => RewrapKeyRingAsync(context, parse, cancellationToken));
        return new Command("db", "Database maintenance.") { migrate, rewrap };
    }

    private static async Task<int> RewrapKeyRingAsync(CommandContext context, ParseResult parse, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        var configured = host.Services.GetRequiredService<IConfiguration>()[KeyRingOptionsValidation.Current];
        if (string.IsNullOrWhiteSpace(configured))
        {
            await context.Error.WriteLineAsync(
                $"rewrap-key-ring: {KeyRingOptionsValidation.Current} is not set, so there is no key-encryption key to encrypt the key ring with " +
                "(generate one with `openssl rand -base64 32`). Nothing was changed.");
            return ExitCodes.Error;
        }

        // Validated options: a key that is not 32 bytes is refused as a configuration error, naming the option only.
        var keys = KeyEncryptionKeys.From(host.Services.GetRequiredService<IOptions<KeyRingOptions>>().Value)!;
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        var rewrap = new KeyRingRewrap(host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), keys, host.Services);
        var results = await rewrap.RunAsync(cancellationToken);

        int Count(RewrapOutcome outcome) => results.Count(r => r.Outcome == outcome);
        var failed = results.Where(r => r.Outcome is RewrapOutcome.Unreadable or RewrapOutcome.Contended).ToList();
        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new
            {
                keyEncryptionKey = keys.Current.Id,
                fromPlaintext = Count(RewrapOutcome.FromPlaintext),
                fromPreviousKeyEncryptionKey = Count(RewrapOutcome.FromPreviousKeyEncryptionKey),
                alreadyCurrent = Count(RewrapOutcome.AlreadyCurrent),
                failed = failed.Select(f => new { keyId = f.KeyId, outcome = f.Outcome, problem = f.Problem }),
            }, CliJson.Options));
        }
        else
        {
            await context.Output.WriteLineAsync(
                $"Key ring under key-encryption key {keys.Current.Id}: {results.Count} key(s); " +
                $"re-wrapped {Count(RewrapOutcome.FromPlaintext)} from plaintext, {Count(RewrapOutcome.FromPreviousKeyEncryptionKey)} from a previous key-encryption key; " +
                $"{Count(RewrapOutcome.AlreadyCurrent)} already current.");
        }

        foreach (var key in failed)
        {
            await context.Error.WriteLineAsync($"rewrap-key-ring: key {key.KeyId} was left unchanged: {key.Problem}");
        }

        return failed.Count == 0 ? ExitCodes.Success : ExitCodes.Error;
    }
}
