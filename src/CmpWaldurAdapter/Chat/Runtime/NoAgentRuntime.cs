using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Chat.Runtime;

/// <summary>
/// The runtime of an adapter without Langflow (record-only provisioning): chat answers 503 with a clear
/// reason, and nothing is charged.
/// </summary>
public sealed class NoAgentRuntime : IAgentRuntime, IKnowledgeRetriever
{
    public const string Reason = "Chat is not available on this adapter: no agent runtime (Langflow) is configured.";

    public bool Available => false;

    public Task<string> RunAsync(AgentRequest request, CancellationToken cancellationToken) =>
        throw new AgentUnavailableException(Reason, transient: true) { PublicReason = Reason };

    public IAsyncEnumerable<string> StreamAsync(AgentRequest request, CancellationToken cancellationToken) =>
        throw new AgentUnavailableException(Reason, transient: true) { PublicReason = Reason };

    public Task<IReadOnlyList<KnowledgeChunk>> RetrieveAsync(Subscription subscription, string query, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<KnowledgeChunk>>([]);
}
