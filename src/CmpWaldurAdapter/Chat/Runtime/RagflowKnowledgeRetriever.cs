using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Tenants;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat.Runtime;

/// <summary>
/// Retrieval from the subscription's own RAGFlow dataset: the id comes only from the subscription's row,
/// never from a request. RAGFlow's envelope errors (HTTP 200, non-zero code) fail the message like an outage.
/// </summary>
public sealed class RagflowKnowledgeRetriever(IRagflowApi ragflow, IOptions<ChatOptions> options, ILogger<RagflowKnowledgeRetriever> logger) : IKnowledgeRetriever
{
    public async Task<IReadOnlyList<KnowledgeChunk>> RetrieveAsync(Subscription subscription, string query, CancellationToken cancellationToken)
    {
        if (subscription.RagflowDatasetId is not { Length: > 0 } dataset)
        {
            return [];
        }

        RetrievalEnvelope answer;
        try
        {
            answer = await ragflow.RetrieveAsync(new RetrievalRequest { Question = query, Dataset_ids = [dataset], Page_size = options.Value.RetrievalChunks }, cancellationToken);
        }
        catch (Exception exception) when ((exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested) && NoSearchIndexYet(exception))
        {
            // A tenant none of whose documents has finished parsing has no search index yet: nothing to find, not an outage.
            return [];
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var envelope = RagflowException.Find(exception);
            logger.LogWarning("Retrieval from dataset {RagflowDatasetId} failed: {Reason}", dataset, envelope is not null ? $"code {envelope.Code}" : exception.GetType().Name);
            throw new AgentUnavailableException("The knowledge base is unavailable.", envelope?.IsTransient ?? true, exception);
        }

        return (answer.Data?.Chunks ?? [])
            // Defence in depth: only passages of the subscription's own dataset reach its prompt.
            .Where(c => !string.IsNullOrWhiteSpace(c.Content) && (c.Dataset_id is null || c.Dataset_id == dataset))
            .Select(c => new KnowledgeChunk(c.Content!, c.Document_keyword ?? string.Empty, c.Similarity ?? 0))
            .ToList();
    }

    /// <summary>RAGFlow's "No chunk found!" (code 102, or 100 in some versions): the dataset has no search index yet.</summary>
    private static bool NoSearchIndexYet(Exception exception) =>
        RagflowException.Find(exception) is { Code: 100 or 102 } envelope
        && envelope.UpstreamMessage.StartsWith("No chunk found", StringComparison.OrdinalIgnoreCase);
}
