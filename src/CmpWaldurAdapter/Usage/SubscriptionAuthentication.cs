using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// Turns a bearer token into the subscription it may act for. The seam the agent runtime backs with
/// subscription API keys; until then <see cref="ConfiguredTokenAuthenticator"/> serves it.
/// </summary>
public interface ISubscriptionAuthenticator
{
    /// <summary>The subscription id the token belongs to, or null when the token is unknown or revoked.</summary>
    ValueTask<Guid?> AuthenticateAsync(string token, CancellationToken cancellationToken);
}

/// <summary>
/// Tokens from configuration (<c>Usage:ApiTokens</c>): only SHA-256 hashes are configured, compared
/// in constant time, so neither the config nor a timing probe reveals a token.
/// </summary>
public sealed class ConfiguredTokenAuthenticator(IOptionsMonitor<UsageOptions> options) : ISubscriptionAuthenticator
{
    public ValueTask<Guid?> AuthenticateAsync(string token, CancellationToken cancellationToken)
    {
        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        Guid? match = null;
        foreach (var candidate in options.CurrentValue.ApiTokens)
        {
            if (TryHex(candidate.Sha256, out var expected) && CryptographicOperations.FixedTimeEquals(presented, expected))
            {
                match ??= candidate.Subscription;
            }
        }

        return ValueTask.FromResult(match);
    }

    /// <summary>The hex SHA-256 to configure for <paramref name="token"/>.</summary>
    public static string HashOf(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static bool TryHex(string text, out byte[] bytes)
    {
        try
        {
            bytes = Convert.FromHexString(text);
            return bytes.Length == 32;
        }
        catch (FormatException)
        {
            bytes = [];
            return false;
        }
    }
}
