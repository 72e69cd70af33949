using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Chat;

/// <summary>One message's run, ready for the runtime, with what the answer reports about its knowledge.</summary>
/// <param name="Sources">Names of the retrieved documents, when the subscription's settings ask for citations.</param>
/// <param name="NothingRetrieved">The subscription has a knowledge base and the search found nothing (a handoff signal).</param>
public sealed record AgentTurn(AgentRequest Request, IReadOnlyList<string> Sources, bool NothingRetrieved);

/// <summary>The request's own model settings for a turn (the API's; the buyer pages send none).</summary>
public sealed record TurnSettings(string? ClientInstructions = null, double? Temperature = null, int? MaxTokens = null);

/// <summary>
/// Prepares a message of a subscription's own agent, the same for the chat API and the buyer pages: its workspace
/// (cached briefly: one database round trip fewer per message), its configuration, retrieval from its own
/// knowledge base (when it holds any document), and the tweaks built from them.
/// </summary>
public sealed class AgentTurns(IKnowledgeRetriever retriever, KnowledgePresence knowledge, IAgentTweaks tweaks, IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock)
{
    /// <summary>How long a workspace's Langflow identity is reused without reading the database (it changes only when a tenant is repaired).</summary>
    private static readonly TimeSpan WorkspaceCacheLifetime = TimeSpan.FromSeconds(30);

    private readonly ConcurrentDictionary<Guid, (Workspace Workspace, DateTimeOffset Expires)> _workspaces = new();

    public async Task<AgentTurn> PrepareAsync(Subscription subscription, CatalogueEntry offering, string sessionId, string input, TurnSettings settings, CancellationToken cancellationToken)
    {
        var workspace = await WorkspaceAsync(subscription.WorkspaceId, cancellationToken);
        var configuration = JsonNode.Parse(subscription.Configuration) as JsonObject ?? [];
        IReadOnlyList<KnowledgeChunk> context = [];
        var nothingRetrieved = false;
        if (offering.Has(Capability.KnowledgeBase) && subscription.RagflowDatasetId is not null)
        {
            // A knowledge base without documents finds nothing: no need to ask RAGFlow (and pay its embedding of the question).
            context = await knowledge.HasDocumentsAsync(subscription.Id, cancellationToken)
                ? await retriever.RetrieveAsync(subscription, input, cancellationToken)
                : [];
            nothingRetrieved = context.Count == 0;
        }

        var built = tweaks.Build(new AgentTweakInput(subscription, offering, configuration, context, settings.ClientInstructions, settings.Temperature, settings.MaxTokens));
        return new AgentTurn(new AgentRequest(subscription, workspace, sessionId, input, built), CitedSources(configuration, context), nothingRetrieved);
    }

    /// <summary>The runtime refused the workspace's identity: read it again next time (perhaps a repaired tenant's new key).</summary>
    public void ForgetWorkspace(Guid workspaceId) => _workspaces.TryRemove(workspaceId, out _);

    /// <summary>The retrieved documents' names when the subscription's settings ask for citations, else none.</summary>
    private static IReadOnlyList<string> CitedSources(JsonObject configuration, IReadOnlyList<KnowledgeChunk> context) => CitesSources(configuration)
        ? [.. context.Select(c => c.DocumentName).Where(name => !string.IsNullOrWhiteSpace(name)).Distinct(StringComparer.Ordinal)]
        : [];

    /// <summary>The buyer asked for citations: the offering's <c>citations</c> switch, or a Research Agent's citation style.</summary>
    private static bool CitesSources(JsonObject configuration) =>
        configuration["citations"] is JsonValue citations && (citations.GetValueKind() == JsonValueKind.True || (citations.TryGetValue<string>(out var flag) && flag == "true"))
        || configuration["citation_style"] is JsonValue style && style.TryGetValue<string>(out var name) && name is { Length: > 0 } && name != "none";

    private async Task<Workspace> WorkspaceAsync(Guid id, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_workspaces.TryGetValue(id, out var cached) && cached.Expires > now)
        {
            return cached.Workspace;
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var workspace = await db.Workspaces.AsNoTracking().SingleAsync(w => w.Id == id, cancellationToken);
        _workspaces[id] = (workspace, now + WorkspaceCacheLifetime);
        return workspace;
    }
}
