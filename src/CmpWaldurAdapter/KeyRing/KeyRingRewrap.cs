using System.Security.Cryptography;
using System.Xml.Linq;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.KeyRing;

/// <summary>How one stored key of the ring was found, and what became of it.</summary>
public enum RewrapOutcome
{
    /// <summary>Its secret was stored in plaintext (made before a key-encryption key was set); now encrypted.</summary>
    FromPlaintext,

    /// <summary>Its secret was encrypted with a previous key-encryption key; now with the current one.</summary>
    FromPreviousKeyEncryptionKey,

    /// <summary>Its secret was already encrypted with the current key-encryption key; left as it was.</summary>
    AlreadyCurrent,

    /// <summary>Its secret cannot be decrypted with the configured key-encryption keys; left as it was.</summary>
    Unreadable,

    /// <summary>Its row changed between every read and write (other runs at once); left to the next run.</summary>
    Contended,
}

/// <summary>One stored key: its Data Protection key id (never its secret), the outcome, and why, when unreadable.</summary>
public sealed record RewrappedKey(string KeyId, RewrapOutcome Outcome, string? Problem = null);

/// <summary>
/// Re-wraps the stored Data Protection key ring under the current key-encryption key: plaintext secrets (keys made
/// before one was set) and secrets under a previous one are encrypted with the current one. Only the wrapping
/// changes (key ids, dates and secrets stay), so replicas, which cache the decrypted ring, and every value protected
/// before are unaffected. Each row is written only if it still holds what was read, and none is deleted: safe to run
/// while replicas serve, and a second run changes nothing.
/// </summary>
internal sealed class KeyRingRewrap(IDbContextFactory<AdapterDbContext> contexts, KeyEncryptionKeys keys, IServiceProvider services)
{
    private static readonly XNamespace DataProtection = "http://schemas.asp.net/2015/03/dataProtection";
    private static readonly XName EncryptedSecret = DataProtection + "encryptedSecret";
    private static readonly XName RequiresEncryption = DataProtection + "requiresEncryption";
    private static readonly XName DecryptorType = "decryptorType";

    /// <summary>A row another run rewrote between our read and our write is read again; a few tries are plenty.</summary>
    private const int Attempts = 3;

    private readonly KeyRingXmlEncryptor _encryptor = new(keys);
    private readonly KeyRingXmlDecryptor _decryptor = new(services);

    public async Task<IReadOnlyList<RewrappedKey>> RunAsync(CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var rows = await db.DataProtectionKeys.AsNoTracking().OrderBy(k => k.Id).Select(k => k.Id).ToListAsync(cancellationToken);
        var results = new List<RewrappedKey>(rows.Count);
        foreach (var row in rows)
        {
            if (await RewrapRowAsync(db, row, cancellationToken) is { } result)
            {
                results.Add(result);
            }
        }

        return results;
    }

    private async Task<RewrappedKey?> RewrapRowAsync(AdapterDbContext db, int row, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var stored = await db.DataProtectionKeys.AsNoTracking().Where(k => k.Id == row).Select(k => k.Xml).SingleOrDefaultAsync(cancellationToken);
            if (stored is null)
            {
                return null; // the framework never deletes keys; nothing to re-wrap in a row without one
            }

            var (result, rewrapped) = Rewrap(stored);
            if (rewrapped is null)
            {
                return result;
            }

            if (await TryReplaceAsync(db, row, stored, rewrapped, cancellationToken))
            {
                return result;
            }

            if (attempt == Attempts)
            {
                return result with { Outcome = RewrapOutcome.Contended, Problem = $"the row changed under every one of {Attempts} attempts to re-wrap it; run the command again" };
            }
        }
    }

    /// <summary>
    /// Compare-and-swap: writes <paramref name="rewrapped"/> only while the row still holds <paramref name="stored"/>;
    /// false when another run changed it in between (it wins, and the caller reads the row again).
    /// </summary>
    internal static async Task<bool> TryReplaceAsync(AdapterDbContext db, int row, string stored, string rewrapped, CancellationToken cancellationToken) =>
        await db.DataProtectionKeys.Where(k => k.Id == row && k.Xml == stored)
            .ExecuteUpdateAsync(set => set.SetProperty(k => k.Xml, rewrapped), cancellationToken) == 1;

    /// <summary>The key's outcome and its XML re-wrapped, or null XML when nothing is to be written.</summary>
    internal (RewrappedKey Result, string? Xml) Rewrap(string stored)
    {
        var key = XElement.Parse(stored);
        var keyId = (string?)key.Attribute("id") ?? "(no id)";
        var fromPrevious = false;
        try
        {
            foreach (var secret in key.Descendants(EncryptedSecret).ToList())
            {
                var decryptor = ((string?)secret.Attribute(DecryptorType))?.Split(',')[0].Trim();
                if (decryptor != typeof(KeyRingXmlDecryptor).FullName)
                {
                    return (new RewrappedKey(keyId, RewrapOutcome.Unreadable, $"its secret is encrypted by {decryptor ?? "an unnamed decryptor"}, not by a key-encryption key of this adapter"), null);
                }

                var encrypted = secret.Elements().SingleOrDefault()
                    ?? throw new CryptographicException("its encryptedSecret element is empty");
                var plaintext = _decryptor.Decrypt(encrypted); // also proves a key under the current key-encryption key readable
                if ((string?)encrypted.Attribute(KeyRingXml.KeyIdAttribute) != keys.Current.Id)
                {
                    secret.ReplaceWith(Wrap(plaintext));
                    fromPrevious = true;
                }
            }
        }
        catch (Exception exception) when (exception is CryptographicException or FormatException or System.Xml.XmlException)
        {
            // The decryptor's messages name key-encryption key ids, never a key or a secret.
            return (new RewrappedKey(keyId, RewrapOutcome.Unreadable, exception.Message), null);
        }

        // As the framework's EncryptIfNecessary: every element marked requiresEncryption="true" is replaced by an
        // encryptedSecret naming the decryptor that reads it back.
        var plaintextSecrets = key.Descendants().Where(e => (string?)e.Attribute(RequiresEncryption) == "true").ToList();
        foreach (var secret in plaintextSecrets)
        {
            secret.ReplaceWith(Wrap(new XElement(secret)));
        }

        var outcome = plaintextSecrets.Count > 0 ? RewrapOutcome.FromPlaintext
            : fromPrevious ? RewrapOutcome.FromPreviousKeyEncryptionKey
            : RewrapOutcome.AlreadyCurrent;
        // Stored as the framework's EF Core repository stores a key.
        return (new RewrappedKey(keyId, outcome), outcome == RewrapOutcome.AlreadyCurrent ? null : key.ToString(SaveOptions.DisableFormatting));
    }

    private XElement Wrap(XElement plaintext)
    {
        var info = _encryptor.Encrypt(plaintext);
        return new XElement(EncryptedSecret, new XAttribute(DecryptorType, info.DecryptorType.AssemblyQualifiedName!), info.EncryptedElement);
    }
}
