using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Chat;

/// <summary>One run of a subscription's own agent flow.</summary>
public sealed record AgentRequest(
    Subscription Subscription,
    Workspace Workspace,
    string SessionId,
    string Input,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, object?>> Tweaks);

/// <summary>
/// Runs agents. Implemented over Langflow (the subscription's flow, with the tenant's own key); the chat
/// pipeline never sees Langflow's ids, events or keys.
/// </summary>
public interface IAgentRuntime
{
    /// <summary>False when no runtime is configured: chat is refused before anything is held.</summary>
    bool Available => true;

    /// <summary>The whole answer.</summary>
    Task<string> RunAsync(AgentRequest request, CancellationToken cancellationToken);

    /// <summary>The answer in pieces as the model produces them. Ends normally only when the run completed.</summary>
    IAsyncEnumerable<string> StreamAsync(AgentRequest request, CancellationToken cancellationToken);
}

/// <summary>Retrieval from the subscription's own knowledge base.</summary>
public interface IKnowledgeRetriever
{
    Task<IReadOnlyList<KnowledgeChunk>> RetrieveAsync(Subscription subscription, string query, CancellationToken cancellationToken);
}

public sealed record KnowledgeChunk(string Content, string DocumentName, double Similarity);

/// <summary>The agent runtime or knowledge base failed: the request is answered 502/503 and not charged.</summary>
public sealed class AgentUnavailableException(string message, bool transient, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>Worth retrying (the upstream is down, slow or overloaded) rather than broken for this request.</summary>
    public bool Transient { get; } = transient;

    /// <summary>A reason safe to show the caller (upstream details never are); null for the generic message.</summary>
    public string? PublicReason { get; init; }
}
