using System.Security.Cryptography;
using System.Text;

namespace CmpWaldurAdapter.KeyRing;

/// <summary>One key-encryption key and the id stored beside what it encrypted (a fingerprint, not the key).</summary>
internal sealed record KeyEncryptionKey(string Id, byte[] Key)
{
    public const int Length = 32;

    private static readonly byte[] IdLabel = Encoding.ASCII.GetBytes("CmpWaldurAdapter key-encryption key id\0");

    /// <summary>The key in <paramref name="base64"/>, or null when it is no base64 of exactly 32 bytes.</summary>
    public static KeyEncryptionKey? Parse(string base64)
    {
        var buffer = new byte[Length + 3]; // room to tell a longer value from an exact one
        if (!Convert.TryFromBase64String(base64.Trim(), buffer, out var written) || written != Length)
        {
            return null;
        }

        var key = buffer[..Length];
        var id = Convert.ToHexStringLower(SHA256.HashData([.. IdLabel, .. key])[..8]);
        return new KeyEncryptionKey(id, key);
    }

    /// <summary>What a value that is not a key decodes to, for a refusal that never shows the value itself.</summary>
    public static string DescribeInvalid(string base64)
    {
        try
        {
            return $"it decodes to {Convert.FromBase64String(base64.Trim()).Length} bytes";
        }
        catch (FormatException)
        {
            return "it is not base64";
        }
    }

    public override string ToString() => $"key-encryption key {Id}"; // never the key
}

/// <summary>The configured key-encryption keys: the current one, which encrypts, and every one that may decrypt.</summary>
internal sealed class KeyEncryptionKeys
{
    private KeyEncryptionKeys(KeyEncryptionKey current, IReadOnlyList<KeyEncryptionKey> all)
    {
        Current = current;
        All = all;
    }

    public KeyEncryptionKey Current { get; }

    public IReadOnlyList<KeyEncryptionKey> All { get; }

    /// <summary>The keys of valid options, or null when none is configured.</summary>
    public static KeyEncryptionKeys? From(KeyRingOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.KeyEncryptionKey))
        {
            return null;
        }

        var current = KeyEncryptionKey.Parse(options.KeyEncryptionKey)
            ?? throw new InvalidOperationException($"{KeyRingOptions.SectionName}:{nameof(KeyRingOptions.KeyEncryptionKey)} is not a valid key.");
        var previous = options.PreviousKeyEncryptionKeys.Where(k => !string.IsNullOrWhiteSpace(k))
            .Select(k => KeyEncryptionKey.Parse(k) ?? throw new InvalidOperationException($"{KeyRingOptions.SectionName}:{nameof(KeyRingOptions.PreviousKeyEncryptionKeys)} holds a value that is not a valid key."));
        return new KeyEncryptionKeys(current, [current, .. previous]);
    }

    public KeyEncryptionKey? Find(string id) => All.FirstOrDefault(k => k.Id == id);
}
