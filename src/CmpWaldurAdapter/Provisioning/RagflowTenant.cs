using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// The RAGFlow side of a tenant: one dataset per subscription under the adapter's service account. RAGFlow
/// cannot keep buyers apart (one key reaches every dataset), so dataset ids come only from subscription rows
/// and every lookup is by the name derived from the subscription's own resource.
/// </summary>
public sealed class RagflowTenant(IRagflowApi ragflow, KnowledgeBase knowledge, AdoptedDocuments adoptedDocuments, ParseMonitor parses, ILogger<RagflowTenant> logger)
{
    /// <summary>How many "name(n)" twins a lookup probes: RAGFlow numbers them from 1 without gaps.</summary>
    private const int MaxTwins = 10;

    /// <summary>
    /// The dataset settings sent on every create: RAGFlow's own default turns RAPTOR and GraphRAG on (LLM-heavy
    /// and slow), so the parser configuration is always explicit.
    /// </summary>
    public static CreateDatasetRequest CreateRequest(string name, Guid resourceUuid) => new()
    {
        Name = name,
        Description = $"Knowledge base of Waldur resource {resourceUuid}",
        Permission = CreateDatasetRequestPermission.Me,
        Chunk_method = CreateDatasetRequestChunk_method.Naive,
        Parser_config = new ParserConfig
        {
            Chunk_token_num = 512,
            Delimiter = "\n",
            Auto_keywords = 0,
            Auto_questions = 0,
            Layout_recognize = "DeepDOC",
            Html4excel = false,
            Raptor = new RaptorConfig { Use_raptor = false },
            Graphrag = new GraphragConfig { Use_graphrag = false },
        },
    };

    /// <summary>
    /// <c>ragflow-dataset</c>: the subscription's dataset exists once, under its deterministic name. A dataset found
    /// by name that the subscription did not record yet is adopted with its documents (<see cref="AdoptedDocuments"/>).
    /// </summary>
    public async Task EnsureDatasetAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var subscription = context.Subscription;
        var name = TenantNames.Dataset(subscription.ResourceUuid);
        var dataset = await FindAsync(name, cancellationToken);
        var adopted = dataset is not null;
        if (dataset is null)
        {
            await ForgetDocumentsAsync(subscription.Id, cancellationToken);
            var created = (await ragflow.CreateDatasetAsync(CreateRequest(name, subscription.ResourceUuid), cancellationToken))?.Data
                ?? throw new TransientProvisioningException("RAGFlow answered the create with no dataset.");
            if (string.Equals(created.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                dataset = created;
            }
            else
            {
                // Renamed to "name(1)": the name was taken meanwhile. Keep the original, drop the twin just made.
                await DeleteAsync(created.Id, cancellationToken);
                dataset = await FindAsync(name, cancellationToken)
                    ?? throw new TransientProvisioningException($"RAGFlow renamed dataset {name} to {created.Name}, but no dataset has the name.");
                adopted = true;
            }

            logger.LogInformation("RAGFlow dataset {RagflowDatasetId} serves subscription {SubscriptionId}", dataset.Id, subscription.Id);
        }

        foreach (var twin in await FindTwinsAsync(name, cancellationToken))
        {
            if (twin.Id != dataset.Id)
            {
                logger.LogWarning("Deleting RAGFlow dataset {RagflowDatasetId} ({Name}), a renamed twin of {Expected}", twin.Id, twin.Name, name);
                await DeleteAsync(twin.Id, cancellationToken);
            }
        }

        // Documents of an adopted dataset are recorded here rather than by the reconciler: every adoption passes
        // through this step (Create and Restore orders, and the reconciler's repair of a missing tenant runs the same
        // steps), and only here is it certain the adapter had no record of the dataset, so no upload can be in flight
        // (uploads need the recorded id) that this would record as already paid. The records are saved before the
        // id, so a crash in between leaves a step that finds them and records nothing twice.
        if (adopted && !string.Equals(subscription.RagflowDatasetId, dataset.Id, StringComparison.OrdinalIgnoreCase))
        {
            await RecordDocumentsAsync(subscription.Id, dataset.Id, cancellationToken);
        }

        subscription.RagflowDatasetId = dataset.Id;
        context.Note("Your private knowledge base is ready for your documents.");
    }

    /// <summary>
    /// Before a new, empty dataset is made: no dataset is named for the resource, so the subscription's documents are gone
    /// with the one it had (deleted by its Terminate, or in RAGFlow itself). Their records would otherwise list them as
    /// there, count them against the document limit, have chat search an empty dataset, and keep connector pages
    /// "unchanged" so no sync brought them back. They are forgotten here, not at Terminate: this one point covers a
    /// Restore and the reconciler rebuilding a dataset lost in RAGFlow, and a terminated subscription keeps the record of
    /// how each parse ended. Done before the create, so a crash after it adopts the new dataset with nothing stale left.
    /// Charges stay in the ledger; holds of parses still open are given back first.
    /// </summary>
    private async Task ForgetDocumentsAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        // A new subscription has none: its Create must not wait for the parse monitor's pass over every tenant.
        if (!await knowledge.HasRecordsAsync(subscriptionId, cancellationToken))
        {
            return;
        }

        await parses.CloseForRemovalAsync(subscriptionId, null, cancellationToken);
        if (await knowledge.ForgetAllAsync(subscriptionId, cancellationToken) is > 0 and var forgotten)
        {
            logger.LogWarning("Forgot {Count} document record(s) of subscription {SubscriptionId}: its RAGFlow dataset is gone and a new, empty one is made", forgotten, subscriptionId);
        }
    }

    private async Task RecordDocumentsAsync(Guid subscriptionId, string datasetId, CancellationToken cancellationToken)
    {
        try
        {
            await adoptedDocuments.RecordAsync(subscriptionId, datasetId, cancellationToken);
        }
        catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception))
        {
            // Another attempt recorded them meanwhile: the next run finds its records and adds nothing.
            throw new TransientProvisioningException("The knowledge base's documents were being recorded concurrently; retrying.", exception);
        }
    }

    /// <summary>
    /// <c>ragflow-dataset-delete</c>: the recorded dataset, and any dataset named for this resource, with all documents.
    /// Parses done are charged and the others' holds given back first (<see cref="ParseMonitor.CloseForRemovalAsync"/>):
    /// no poll reads the dataset afterwards, and the final usage report, a later step, includes those charges.
    /// </summary>
    public async Task DeleteDatasetAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var subscription = context.Subscription;
        await parses.CloseForRemovalAsync(subscription.Id, subscription.RagflowDatasetId is { Length: > 0 } dataset ? dataset : null, cancellationToken);
        var name = TenantNames.Dataset(subscription.ResourceUuid);
        var targets = new List<string>();
        if (subscription.RagflowDatasetId is { Length: > 0 } recorded)
        {
            targets.Add(recorded);
        }

        if (await FindAsync(name, cancellationToken) is { } named)
        {
            targets.Add(named.Id);
        }

        targets.AddRange((await FindTwinsAsync(name, cancellationToken)).Select(t => t.Id));
        foreach (var id in targets.Distinct(StringComparer.Ordinal))
        {
            await DeleteAsync(id, cancellationToken);
            logger.LogInformation("Deleted RAGFlow dataset {RagflowDatasetId} of subscription {SubscriptionId}", id, subscription.Id);
        }

        subscription.RagflowDatasetId = null;
        context.Note("The knowledge base, with all its documents.");
    }

    /// <summary>The dataset with exactly this name, or null (RAGFlow answers an unknown name with code 102).</summary>
    private async Task<Dataset?> FindAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var found = await ragflow.FindDatasetByNameAsync(name, cancellationToken);
            return found?.Data?.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase));
        }
        catch (Exception exception) when (RagflowException.Find(exception) is { IsNotFound: true })
        {
            return null;
        }
    }

    private async Task<List<Dataset>> FindTwinsAsync(string name, CancellationToken cancellationToken)
    {
        var twins = new List<Dataset>();
        for (var number = 1; number <= MaxTwins; number++)
        {
            if (await FindAsync(TenantNames.RagflowTwin(name, number), cancellationToken) is not { } twin)
            {
                break;
            }

            twins.Add(twin);
        }

        return twins;
    }

    /// <summary>Deletes one dataset by id; one id per call, because one missing id makes RAGFlow delete none. Gone is success.</summary>
    private async Task DeleteAsync(string id, CancellationToken cancellationToken)
    {
        try
        {
            await ragflow.DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [id] }, cancellationToken);
        }
        catch (Exception exception) when (RagflowException.Find(exception) is { IsNotFound: true })
        {
            // Already gone.
        }
    }
}
