namespace CmpWaldurAdapter.Tenants;

/// <summary>
/// A buyer project (Waldur project), mapped to one Langflow user that owns the project's flows.
/// Upstream credentials are stored encrypted, never in plain text.
/// </summary>
public sealed class Workspace
{
    /// <summary>Width of <see cref="Name"/>; Waldur allows project names of 500, so they are clipped.</summary>
    public const int MaxNameLength = 300;

    /// <summary>The Waldur project UUID.</summary>
    public Guid Id { get; set; }

    public Guid CustomerId { get; set; }

    public string Name { get; set; } = string.Empty;

    public string? LangflowUserId { get; set; }

    public string? LangflowUsername { get; set; }

    /// <summary>The Langflow user's password, encrypted with Data Protection.</summary>
    public string? LangflowPasswordCipher { get; set; }

    public string? LangflowApiKeyId { get; set; }

    /// <summary>The Langflow user's API key, encrypted with Data Protection.</summary>
    public string? LangflowApiKeyCipher { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public long Version { get; set; }
}
