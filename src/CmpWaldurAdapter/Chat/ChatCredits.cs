using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Chat;

/// <summary>The price of one message, held before the agent runs.</summary>
public sealed record ChatHold(Guid Reservation, long Credits);

/// <summary>
/// The chat pipeline's view of the credit ledger: hold the price before running, settle on success,
/// release on failure. Holds are idempotent per request id.
/// </summary>
public interface IChatCredits
{
    /// <summary>Holds one message's price; null when the organization's balance cannot cover it.</summary>
    Task<ChatHold?> HoldAsync(Subscription subscription, string requestId, CancellationToken cancellationToken);

    /// <summary>Charges the hold; returns the credits charged (a replayed request id charges nothing more).</summary>
    Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken);

    Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken);
}
