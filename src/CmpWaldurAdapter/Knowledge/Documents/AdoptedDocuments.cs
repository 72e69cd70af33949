using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Contracts;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Knowledge.Documents;

/// <summary>
/// Records the documents of a dataset the adapter adopted by name: it was already in RAGFlow when this database
/// had no record of it (the database was lost or restored, and the subscription was provisioned again or
/// reconciled). Without records its documents would be neither listed, nor searched (chat asks
/// <see cref="KnowledgePresence"/>), nor cited. A parse is charged when it is first seen done, so a document RAGFlow
/// reports done was paid for (and reported to Waldur) before the records were lost: it is recorded as charged
/// (0 credits, no hold). One still parsing, or never parsed, was not paid for: recorded uncharged and without a
/// hold, it is charged by <see cref="ParseMonitor"/> when its parse is done (<c>doc:{RAGFlow id}</c>, once), or taken
/// out if the organization cannot pay. A document already recorded (same RAGFlow id) is left exactly as it is.
/// </summary>
public sealed class AdoptedDocuments(
    IDbContextFactory<AdapterDbContext> dbs,
    KnowledgeBase knowledge,
    KnowledgePresence presence,
    TimeProvider clock,
    ILogger<AdoptedDocuments> logger)
{
    /// <summary>
    /// Lists the dataset in RAGFlow (every page) and records each document the subscription has no record of.
    /// <paramref name="datasetId"/> must be the dataset found under the subscription's own name. Returns how many
    /// were recorded; a second call records nothing. RAGFlow refusing the list throws before anything is recorded.
    /// Two callers recording the same document at once: the loser's save fails as a unique violation and records nothing.
    /// </summary>
    public async Task<int> RecordAsync(Guid subscriptionId, string datasetId, CancellationToken cancellationToken)
    {
        var remote = await knowledge.ListRemoteAsync(datasetId, cancellationToken);
        if (remote.Count == 0)
        {
            return 0;
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var recorded = (await db.KnowledgeDocuments.AsNoTracking()
            .Where(d => d.SubscriptionId == subscriptionId)
            .Select(d => d.RagflowDocumentId)
            .ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);

        var now = clock.GetUtcNow();
        var added = 0;
        foreach (var document in remote.Values)
        {
            if (recorded.Contains(document.Id) || !InDataset(document, datasetId))
            {
                continue;
            }

            db.KnowledgeDocuments.Add(Row(subscriptionId, document, now));
            added++;
        }

        if (added == 0)
        {
            return 0;
        }

        await db.SaveChangesAsync(CancellationToken.None);
        presence.Added(subscriptionId);
        logger.LogWarning("Recorded {Count} document(s) found in the adopted RAGFlow dataset {RagflowDatasetId} of subscription {SubscriptionId}; they are not charged again",
            added, datasetId, subscriptionId);
        return added;
    }

    /// <summary>A document RAGFlow files under another dataset is never taken for this subscription's.</summary>
    private static bool InDataset(Document document, string datasetId) =>
        (document.Dataset_id ?? document.Knowledgebase_id) is not { Length: > 0 } owner || string.Equals(owner, datasetId, StringComparison.OrdinalIgnoreCase);

    /// <summary>The record, in the terms <see cref="ParseMonitor"/> would have left it: charged once its parse is done.</summary>
    private static KnowledgeDocument Row(Guid subscriptionId, Document document, DateTimeOffset now)
    {
        var run = ParseStates.FromRagflow(document.Run);
        var row = new KnowledgeDocument
        {
            Id = Guid.CreateVersion7(now),
            SubscriptionId = subscriptionId,
            // The origin (upload, URL, connector) was in the lost records; the connectors that re-sync are gone too.
            Source = DocumentSource.Upload,
            Name = KnowledgeBase.Shorten(string.IsNullOrWhiteSpace(document.Name) ? document.Id : document.Name, 500),
            RagflowDocumentId = document.Id,
            SizeBytes = Math.Max(0, document.Size ?? 0),
            ChargedAt = run == ParseStates.Done ? now : null,
            CreditsCharged = 0,
            CreditReservationId = null,
            // RAGFlow's create_time (ms) keeps the console's order of first upload; anything implausible is "now".
            CreatedAt = document.Create_time is > 0 and var ms && ms <= now.ToUnixTimeMilliseconds() ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : now,
            UpdatedAt = now,
        };

        switch (run)
        {
            case ParseStates.Done:
                row.Status = ParseStates.Done;
                row.Progress = 1;
                break;
            case ParseStates.Running:
                row.Status = ParseStates.Running;
                row.Progress = Math.Clamp(document.Progress ?? 0, 0, 1);
                // Started before the records were lost (or in a state the adapter does not know, followed as running):
                // the stuck-parse watchdog counts from now, and may restart it once.
                row.ParseStartedAt = now;
                row.ParseAttempts = 1;
                break;
            case ParseStates.Fail:
                row.Status = ParseStates.Fail;
                row.Error = ParseMonitor.FailureReason(document.Progress_msg);
                break;
            case ParseStates.Cancel:
                row.Status = ParseStates.Cancel;
                row.Error = "Parsing was stopped in the knowledge base.";
                break;
            default:
                // Never parsed: the next poll starts it, and it is charged once done.
                row.Status = ParseStates.Unstart;
                break;
        }

        return row;
    }
}
