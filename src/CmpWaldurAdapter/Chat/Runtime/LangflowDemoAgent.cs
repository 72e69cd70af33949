using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Chat.Runtime;

/// <summary>
/// Try mode: runs an offering's shared demo flow (published by <c>offerings register</c> under the Langflow demo
/// user) with the demo user's own key, through the same Langflow runtime as subscriptions. The demo flow keeps
/// its own settings (no tweaks) and knows no buyer's documents.
/// </summary>
public sealed class LangflowDemoAgent(IAgentRuntime runtime, IDbContextFactory<AdapterDbContext> dbs) : IDemoAgent
{
    public async Task<string> AnswerAsync(CatalogueEntry offering, string sessionId, string input, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var flow = await db.DemoFlows.AsNoTracking().SingleOrDefaultAsync(f => f.Slug == offering.Slug, cancellationToken);
        var demoUser = await db.DemoRuntimes.AsNoTracking().FirstOrDefaultAsync(r => r.ApiKeyCipher != null, cancellationToken);
        if (flow is null || demoUser is null)
        {
            throw new AgentUnavailableException("The offering's demo flow has not been published (run `offerings register`).", transient: true);
        }

        // The runtime addresses a flow through a subscription and a workspace; the demo's are never stored.
        var subscription = new Subscription { LangflowFlowId = flow.LangflowFlowId, State = SubscriptionState.Active };
        var workspace = new Workspace { LangflowApiKeyCipher = demoUser.ApiKeyCipher };
        return await runtime.RunAsync(new AgentRequest(subscription, workspace, sessionId, input, new Dictionary<string, IReadOnlyDictionary<string, object?>>()), cancellationToken);
    }
}
