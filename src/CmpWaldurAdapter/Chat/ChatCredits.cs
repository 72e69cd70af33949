using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Chat;

/// <summary>The price of one message, held before the agent runs.</summary>
/// <param name="PaidBefore">
/// Nothing is held because an earlier attempt of the same request (an Idempotency-Key's retry) was charged already.
/// </param>
public sealed record ChatHold(Guid Reservation, long Credits, bool PaidBefore = false);

/// <summary>A hold, or why there is none; with the subscription's row version as the hold saw it.</summary>
public sealed record ChatHoldAttempt(ChatHold? Hold, CreditRefusal? Refusal, long? SubscriptionVersion);

/// <summary>
/// The chat pipeline's view of the credit ledger: hold the price before running, settle on success,
/// release on failure. Holds are idempotent per request id.
/// </summary>
public interface IChatCredits
{
    /// <summary>
    /// Holds one message's price. With <paramref name="key"/>, the hold also proves that key still live
    /// (refusal <see cref="CreditRefusal.KeyRevoked"/>), so the caller's authentication may come from memory.
    /// </summary>
    Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken);

    /// <summary>Charges the hold; returns the credits charged (a replayed request id charges nothing more).</summary>
    Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken);

    Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken);
}
