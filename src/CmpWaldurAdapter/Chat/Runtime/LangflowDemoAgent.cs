using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Chat.Runtime;

/// <summary>
/// Try mode: runs an offering's shared demo flow (published by <c>offerings register</c> under the Langflow demo
/// user) with the demo user's own key, through the same Langflow runtime as subscriptions. The demo flow keeps
/// its own settings (no tweaks) and knows no buyer's documents.
/// </summary>
public sealed class LangflowDemoAgent(LangflowAgentRuntime runtime, IDbContextFactory<AdapterDbContext> dbs) : IDemoAgent
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

        if (!Guid.TryParse(flow.LangflowFlowId, out var flowId))
        {
            throw new AgentUnavailableException("The offering's demo flow id is not valid; run `offerings register` again.", transient: false);
        }

        return await runtime.RunDemoAsync(flowId, demoUser.ApiKeyCipher!, sessionId, input, cancellationToken);
    }
}
