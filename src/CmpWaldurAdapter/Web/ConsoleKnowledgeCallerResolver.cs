using CmpWaldurAdapter.Knowledge;

namespace CmpWaldurAdapter.Web;

/// <summary>The buyer console's session opens the knowledge-base API for its one subscription (anti-forgery checked by the session).</summary>
public sealed class ConsoleKnowledgeCallerResolver(IConsoleSession sessions) : IKnowledgeCallerResolver
{
    public async ValueTask<Guid?> ResolveAsync(HttpContext http, CancellationToken cancellationToken) =>
        (await sessions.ResolveAsync(http, cancellationToken))?.Subscription.Id;
}
