using System.Security.Cryptography;
using System.Text;

namespace CmpWaldurAdapter.ApiKeys;

/// <summary>
/// Key format: <c>sk_live_</c> or <c>pk_live_</c>, 40 random base62 characters (≈238 bits from 32+
/// random bytes), and a 6-character CRC32 checksum so secret scanners and our own parser can tell a
/// key from a typo without a database lookup.
/// </summary>
public static class ApiKeyFormat
{
    public const string SecretPrefix = "sk_live_";
    public const string PublishablePrefix = "pk_live_";

    /// <summary>Characters after the kind prefix that are stored as the lookup prefix.</summary>
    public const int LookupLength = 8;

    private const int RandomLength = 40;
    private const int ChecksumLength = 6;
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    public static int Length => SecretPrefix.Length + RandomLength + ChecksumLength;

    public static string Generate(ApiKeyKind kind)
    {
        var body = RandomBase62(RandomLength);
        var head = (kind == ApiKeyKind.Secret ? SecretPrefix : PublishablePrefix) + body;
        return head + Checksum(head);
    }

    /// <summary>A random URL-safe token (for one-time links, visitor sessions).</summary>
    public static string RandomToken(int length = 43) => RandomBase62(length);

    public static bool TryParse(string? key, out ApiKeyKind kind, out string prefix)
    {
        kind = default;
        prefix = string.Empty;
        if (key is null || key.Length != Length)
        {
            return false;
        }

        if (key.StartsWith(SecretPrefix, StringComparison.Ordinal))
        {
            kind = ApiKeyKind.Secret;
        }
        else if (key.StartsWith(PublishablePrefix, StringComparison.Ordinal))
        {
            kind = ApiKeyKind.Publishable;
        }
        else
        {
            return false;
        }

        var head = key[..^ChecksumLength];
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Checksum(head)), Encoding.ASCII.GetBytes(key[^ChecksumLength..])))
        {
            return false;
        }

        prefix = PrefixOf(key);
        return true;
    }

    /// <summary>The displayable, indexed start of a key (kind prefix plus the first random characters).</summary>
    public static string PrefixOf(string key) => key[..(SecretPrefix.Length + LookupLength)];

    public static string Hash(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)));

    /// <summary>Compares two hex hashes without leaking where they differ.</summary>
    public static bool HashesEqual(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));

    private static string RandomBase62(int length)
    {
        // Rejection sampling keeps every character uniform (256 is not a multiple of 62).
        var result = new StringBuilder(length);
        Span<byte> buffer = stackalloc byte[64];
        while (result.Length < length)
        {
            RandomNumberGenerator.Fill(buffer);
            foreach (var b in buffer)
            {
                if (b < 248 && result.Length < length)
                {
                    result.Append(Alphabet[b % 62]);
                }
            }
        }

        return result.ToString();
    }

    private static string Checksum(string head)
    {
        var crc = Crc32(Encoding.ASCII.GetBytes(head));
        var chars = new char[ChecksumLength];
        for (var i = ChecksumLength - 1; i >= 0; i--)
        {
            chars[i] = Alphabet[(int)(crc % 62)];
            crc /= 62;
        }

        return new string(chars);
    }

    /// <summary>CRC-32 (IEEE), for the checksum only: it detects typos, it does not protect anything.</summary>
    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
            }
        }

        return ~crc;
    }
}
