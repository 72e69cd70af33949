namespace CmpWaldurAdapter.ApiKeys;

/// <summary>Secret keys call the API from servers; publishable keys only start widget sessions from allowed origins.</summary>
public enum ApiKeyKind
{
    Secret,
    Publishable,
}

/// <summary>
/// An adapter API key of one subscription. Only a hash is stored: the key is shown once, at creation.
/// The prefix finds the row; the hash proves the key.
/// </summary>
public sealed class ApiKey
{
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    public ApiKeyKind Kind { get; set; }

    public string Name { get; set; } = string.Empty;

    /// <summary>The key's public start (e.g. <c>sk_live_AbCd1234</c>): indexed for lookup, safe to display.</summary>
    public string Prefix { get; set; } = string.Empty;

    /// <summary>SHA-256 of the whole key, hex.</summary>
    public string Hash { get; set; } = string.Empty;

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? LastUsedAt { get; set; }

    /// <summary>Set when the key was deleted or regenerated, or its subscription ended: it never works again.</summary>
    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>
/// A one-time link that reveals a key created for the buyer by the adapter (the first key of a
/// subscription), so the key itself never appears in Waldur. The key is kept encrypted until the
/// link is opened, then wiped.
/// </summary>
public sealed class KeyReveal
{
    public Guid Id { get; set; }

    /// <summary>SHA-256 of the link's token, hex; the token itself is only in the link.</summary>
    public string TokenHash { get; set; } = string.Empty;

    public Guid ApiKeyId { get; set; }

    /// <summary>The key, encrypted with Data Protection; null once revealed.</summary>
    public string? KeyCipher { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }

    public DateTimeOffset? RevealedAt { get; set; }
}
