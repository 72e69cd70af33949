using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.Testing.Chat;

/// <summary>
/// The ledger's hold, answered only once a retrieval has reached RAGFlow (and, before the first, what a test changes
/// in the database): a message whose retrieval waited for its hold never gets one.
/// </summary>
public sealed class HoldAfterRetrievalStarts(IChatCredits ledger, Func<int> retrievals, Func<Func<Task>?> beforeHold) : IChatCredits
{
    public async Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken)
    {
        await Eventually.TrueAsync(() => retrievals() > 0, TimeSpan.FromSeconds(10), "the retrieval reaches RAGFlow while the credits are held");
        if (beforeHold() is { } change)
        {
            await change();
        }

        return await ledger.HoldAsync(subscription, requestId, key, cancellationToken);
    }

    public Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken) => ledger.SettleAsync(hold, cancellationToken);

    public Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken) => ledger.ReleaseAsync(hold, cancellationToken);
}
