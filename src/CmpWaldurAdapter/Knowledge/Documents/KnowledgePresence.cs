using System.Collections.Concurrent;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Knowledge.Documents;

/// <summary>
/// Whether a subscription's knowledge base holds any document. Every document in a subscription's dataset has a
/// record: it was added through this adapter, or it was found when the dataset was adopted by name after the
/// adapter's records were lost (<see cref="AdoptedDocuments"/>). A knowledge base without a record therefore has
/// nothing to find, and its messages skip retrieval: RAGFlow embeds every question before it searches, which would
/// cost an embedding call and a round trip per message for nothing. Read from the database at most every few
/// seconds per subscription; a document recorded by this process counts at once, one recorded by another (a
/// replica, or <c>cmp-adapter reconcile</c>) within <see cref="EmptyLifetime"/>, far shorter than parsing takes.
/// </summary>
public sealed class KnowledgePresence(IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock)
{
    /// <summary>How long "no documents" is believed without reading the database again.</summary>
    public static readonly TimeSpan EmptyLifetime = TimeSpan.FromSeconds(5);

    /// <summary>How long "has documents" is believed: a knowledge base emptied since only costs searches that find nothing.</summary>
    private static readonly TimeSpan FilledLifetime = TimeSpan.FromMinutes(5);

    private readonly ConcurrentDictionary<Guid, (bool HasDocuments, DateTimeOffset Until)> _known = new();

    public async ValueTask<bool> HasDocumentsAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_known.TryGetValue(subscriptionId, out var known) && known.Until > now)
        {
            return known.HasDocuments;
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var has = await db.KnowledgeDocuments.AnyAsync(d => d.SubscriptionId == subscriptionId, cancellationToken);
        var read = (has, now + (has ? FilledLifetime : EmptyLifetime));
        // A read that began before an upload here must not hide that upload: "has documents" is never downgraded early.
        return _known.AddOrUpdate(subscriptionId, read, (_, known) => !has && known.HasDocuments && known.Until > now ? known : read).HasDocuments;
    }

    /// <summary>A document was recorded for the subscription (added, or found in an adopted dataset): its next message searches.</summary>
    public void Added(Guid subscriptionId) => _known[subscriptionId] = (true, clock.GetUtcNow() + FilledLifetime);

    /// <summary>The subscription's records were all forgotten (its dataset is gone): the next message reads the database again.</summary>
    public void Emptied(Guid subscriptionId) => _known.TryRemove(subscriptionId, out _);
}
