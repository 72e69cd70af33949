using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Testing.Knowledge;

public static class KnowledgeSeeds
{
    /// <summary>
    /// Records one parsed (and paid for) document in the subscription's knowledge base, as an upload would: its
    /// messages then search the knowledge base. Nothing is put in RAGFlow: what a search finds is the fake's to say.
    /// </summary>
    public static async Task ParsedDocumentAsync(this IDbContextFactory<AdapterDbContext> dbs, Guid subscriptionId, string name = "handbook.md")
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = await dbs.CreateDbContextAsync();
        db.KnowledgeDocuments.Add(new KnowledgeDocument
        {
            Id = Guid.NewGuid(),
            SubscriptionId = subscriptionId,
            Source = DocumentSource.Upload,
            Name = name,
            RagflowDocumentId = Guid.NewGuid().ToString("N"),
            Status = ParseStates.Done,
            Progress = 1,
            ChargedAt = now,
            CreatedAt = now,
            UpdatedAt = now,
        });
        await db.SaveChangesAsync();
    }
}
