namespace CmpWaldurAdapter.Knowledge.Connectors;

public enum ConnectorKind
{
    Notion,
    Confluence,
}

/// <summary>A buyer's Notion workspace or Confluence space feeding the knowledge base; its credentials are encrypted.</summary>
public sealed class KnowledgeConnector
{
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    public ConnectorKind Kind { get; set; }

    /// <summary>What it reads, without secrets: Notion page/database ids, or the Confluence site and space key.</summary>
    public string Description { get; set; } = string.Empty;

    /// <summary>The settings and credentials as JSON, protected with Data Protection.</summary>
    public string ProtectedSettings { get; set; } = string.Empty;

    public DateTimeOffset? LastSyncedAt { get; set; }

    /// <summary>Why the last sync failed, for the buyer; null after a successful one.</summary>
    public string? LastError { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public long Version { get; set; }
}
