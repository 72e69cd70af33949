using CmpWaldurAdapter.Configuration;
using CmpWaldurAdapter.Persistence;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.KeyRing;

/// <summary>
/// Refuses key-encryption keys that are not 32 bytes (naming the option, never showing the value) and, on PostgreSQL,
/// a key ring without one: there the database is shared and backed up, and a dump of it would decrypt every tenant's
/// credentials. SQLite (the embedded default) and the sandbox may run without, with a warning at start.
/// </summary>
internal sealed class KeyRingOptionsValidation(IServiceProvider services) : IValidateOptions<KeyRingOptions>
{
    public const string Current = $"{KeyRingOptions.SectionName}:{nameof(KeyRingOptions.KeyEncryptionKey)}";
    public const string Previous = $"{KeyRingOptions.SectionName}:{nameof(KeyRingOptions.PreviousKeyEncryptionKeys)}";
    public const string OptOut = $"{KeyRingOptions.SectionName}:{nameof(KeyRingOptions.AllowUnencryptedKeyRing)}";

    public ValidateOptionsResult Validate(string? name, KeyRingOptions options)
    {
        if (name != Options.DefaultName)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>();
        var configured = !string.IsNullOrWhiteSpace(options.KeyEncryptionKey);
        if (configured && KeyEncryptionKey.Parse(options.KeyEncryptionKey!) is null)
        {
            failures.Add($"{Current} must be base64 of exactly {KeyEncryptionKey.Length} random bytes (generate one with `openssl rand -base64 32`), but {KeyEncryptionKey.DescribeInvalid(options.KeyEncryptionKey!)}.");
        }

        for (var i = 0; i < options.PreviousKeyEncryptionKeys.Count; i++)
        {
            var previous = options.PreviousKeyEncryptionKeys[i];
            if (!string.IsNullOrWhiteSpace(previous) && KeyEncryptionKey.Parse(previous) is null)
            {
                failures.Add($"{Previous}:{i} must be base64 of exactly {KeyEncryptionKey.Length} bytes, but {KeyEncryptionKey.DescribeInvalid(previous)}.");
            }
        }

        if (!configured && options.PreviousKeyEncryptionKeys.Any(k => !string.IsNullOrWhiteSpace(k)))
        {
            failures.Add($"{Previous} is set but {Current} is not: keep the key ring encrypted with a current key-encryption key, the previous ones only decrypt.");
        }

        if (!configured && !options.AllowUnencryptedKeyRing && ValidOptions.OrNull<DatabaseOptions>(services) is { Provider: DatabaseProvider.Postgres })
        {
            failures.Add(
                $"{Current} is required with Database:Provider=Postgres: the Data Protection key ring, which encrypts every tenant's Langflow credentials and signs console links, " +
                $"is stored in the database, and without a key-encryption key kept outside it anyone who can read the database (a dump, a read-only role) can decrypt them. " +
                $"Generate one with `openssl rand -base64 32` and pass it as the environment variable DataProtection__KeyEncryptionKey (e.g. from a Kubernetes Secret), " +
                $"or set {OptOut}=true to store the key ring unencrypted.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
