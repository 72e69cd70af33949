using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Knowledge;

/// <summary>How a cited document is shown: the name in the knowledge base and where the original lives.</summary>
public sealed record KnowledgeDocumentName(Guid DocumentId, string Name, DocumentSource Source, string? SourceUrl);

/// <summary>
/// The documents of one subscription's dataset by RAGFlow document id, for chat citations: a retrieved chunk's
/// <c>document_id</c> outside this map is not the subscription's and must not be shown.
/// </summary>
public sealed class KnowledgeDocumentNames(IDbContextFactory<AdapterDbContext> dbs)
{
    public async Task<IReadOnlyDictionary<string, KnowledgeDocumentName>> ForSubscriptionAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var rows = await db.KnowledgeDocuments.AsNoTracking()
            .Where(d => d.SubscriptionId == subscriptionId)
            .Select(d => new { d.RagflowDocumentId, d.Id, d.Name, d.Source, d.SourceUrl })
            .ToListAsync(cancellationToken);
        return rows.ToDictionary(r => r.RagflowDocumentId, r => new KnowledgeDocumentName(r.Id, r.Name, r.Source, r.SourceUrl), StringComparer.Ordinal);
    }
}
