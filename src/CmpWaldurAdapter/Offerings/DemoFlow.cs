namespace CmpWaldurAdapter.Offerings;

/// <summary>An offering's shared demo flow on Langflow, which the offering's try page runs.</summary>
public sealed class DemoFlow
{
    /// <summary>The catalogue slug of the offering.</summary>
    public string Slug { get; set; } = string.Empty;

    /// <summary>The Langflow flow id (under the demo user).</summary>
    public string LangflowFlowId { get; set; } = string.Empty;

    /// <summary>SHA-256 of the published flow graph: a changed demo file updates the flow, an unchanged one does nothing.</summary>
    public string ContentHash { get; set; } = string.Empty;

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>The dedicated Langflow user that owns every demo flow; its credentials are encrypted like tenants'.</summary>
public sealed class DemoRuntime
{
    public string Username { get; set; } = string.Empty;

    public string? LangflowUserId { get; set; }

    /// <summary>The user's password, encrypted with Data Protection.</summary>
    public string? PasswordCipher { get; set; }

    public string? ApiKeyId { get; set; }

    /// <summary>The user's API key, encrypted with Data Protection.</summary>
    public string? ApiKeyCipher { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}
