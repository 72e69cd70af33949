using System.Security.Cryptography;
using Microsoft.AspNetCore.DataProtection;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// Encrypts the upstream secrets the adapter must keep (a tenant's Langflow password and API key) with
/// ASP.NET Core Data Protection; the key ring lives in the adapter's database, so every replica can read
/// what another wrote. Plain values exist only in memory, for the call that needs them.
/// </summary>
public sealed class UpstreamCredentials(IDataProtectionProvider provider)
{
    public const string Purpose = "CmpWaldurAdapter.UpstreamCredentials";

    private readonly IDataProtector _protector = provider.CreateProtector(Purpose);

    public string Protect(string secret) => _protector.Protect(secret);

    public string Unprotect(string cipher) => _protector.Unprotect(cipher);

    /// <summary>A random password: 32 bytes, base64url (43 characters).</summary>
    public static string NewPassword() => Base64Url(RandomNumberGenerator.GetBytes(32));

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
