using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// The chat pipeline's credit seam on the ledger: a message holds its offering's chat price (from the
/// price book) before the agent runs, settles on success, releases on failure.
/// </summary>
public sealed class LedgerChatCredits(CreditLedger ledger, PriceBooks priceBooks) : IChatCredits
{
    public async Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken)
    {
        var price = priceBooks.Quote(subscription.OfferingUuid, ActionClass.ChatMessage);
        var hold = await ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, price.Credits, price.PriceBookVersion, requestId, key, cancellationToken: cancellationToken);
        var held = hold.Status switch
        {
            ReservationStatus.Held or ReservationStatus.AlreadyHeld => new ChatHold(hold.ReservationId!.Value, hold.Credits),
            // Charged before under this request id: settling the empty hold charges nothing more.
            ReservationStatus.AlreadyCharged => new ChatHold(Guid.Empty, 0, PaidBefore: true),
            _ => null,
        };
        return new ChatHoldAttempt(held, held is null ? hold.Refusal ?? CreditRefusal.InsufficientCredits : null, hold.SubscriptionVersion);
    }

    public async Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken) =>
        hold.Reservation == Guid.Empty ? 0 : (await ledger.SettleAsync(hold.Reservation, cancellationToken: cancellationToken)) switch
        {
            { Status: SettleStatus.Settled } settled => settled.Credits,
            _ => 0,
        };

    public async Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken)
    {
        if (hold.Reservation != Guid.Empty)
        {
            await ledger.ReleaseAsync(hold.Reservation, "the agent did not answer", cancellationToken);
        }
    }
}
