using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// Tamper-proof, expiring tokens over Data Protection (the key ring lives in the adapter's database, so every
/// replica reads every token). The expiry is inside the protected payload and checked against the adapter's
/// clock; a token of one purpose never opens another.
/// </summary>
public sealed class SignedTokens(IDataProtectionProvider protection, TimeProvider clock)
{
    private const char Separator = '|';

    public string Create(string purpose, TimeSpan lifetime, params string[] fields)
    {
        var expires = (clock.GetUtcNow() + lifetime).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        return protection.CreateProtector("CmpWaldurAdapter.Web." + purpose).Protect(string.Join(Separator, [.. fields, expires]));
    }

    /// <summary>The fields of a valid, unexpired token of this purpose; null for anything else (forged, expired, other purpose).</summary>
    public string[]? Read(string purpose, string? token, int fieldCount) => Read(purpose, token, fieldCount, TimeSpan.Zero);

    /// <summary>
    /// The fields of a valid token of this purpose that expired at most <paramref name="expiredFor"/> ago: a token
    /// that grants nothing any more but still proves what it was issued for (a widget conversation to carry on).
    /// </summary>
    public string[]? Read(string purpose, string? token, int fieldCount, TimeSpan expiredFor) =>
        ReadExpiring(purpose, token, fieldCount, expiredFor)?.Fields;

    /// <summary>As <see cref="Read(string, string?, int)"/>, with when the token expires.</summary>
    public (string[] Fields, DateTimeOffset Expires)? ReadExpiring(string purpose, string? token, int fieldCount) =>
        ReadExpiring(purpose, token, fieldCount, TimeSpan.Zero);

    private (string[] Fields, DateTimeOffset Expires)? ReadExpiring(string purpose, string? token, int fieldCount, TimeSpan expiredFor)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 4096)
        {
            return null;
        }

        string payload;
        try
        {
            payload = protection.CreateProtector("CmpWaldurAdapter.Web." + purpose).Unprotect(token);
        }
        catch (CryptographicException)
        {
            return null;
        }

        var parts = payload.Split(Separator);
        if (parts.Length != fieldCount + 1
            || !long.TryParse(parts[^1], NumberStyles.None, CultureInfo.InvariantCulture, out var expires)
            || clock.GetUtcNow().ToUnixTimeSeconds() >= expires + (long)Math.Max(0, expiredFor.TotalSeconds))
        {
            return null;
        }

        return (parts[..^1], DateTimeOffset.FromUnixTimeSeconds(expires));
    }
}
