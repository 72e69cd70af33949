using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// The credit operations as the database runs them, each one atomic. Two implementations keep the
/// same promises: <see cref="PostgresCreditStore"/> (one statement per operation, row lock on the
/// account) and <see cref="SqliteCreditStore"/> (one writer; writes that queue behind it share its transaction,
/// each in its own savepoint).
/// </summary>
public interface ICreditStore
{
    Task<ChargeResult> ChargeAsync(ChargeRequest request, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    Task<ReservationResult> ReserveAsync(ChargeRequest request, Guid reservationId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken);

    Task<SettleResult> SettleAsync(Guid reservationId, long? actualCredits, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    Task<ReleaseResult> ReleaseAsync(Guid reservationId, string reason, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    Task<GrantResult> GrantAsync(Guid customerId, long credits, string reason, string requestId, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Waldur-funded mode: balance := max(0, funded − charges of the <paramref name="coveredOfferings"/> (null: all)
    /// since <paramref name="firstUninvoiced"/>), under the account lock; the coverage is kept with it.
    /// </summary>
    Task<CreditAccount> RefreshFundingAsync(Guid customerId, long fundedCredits, IReadOnlySet<Guid>? coveredOfferings, BillingPeriod firstUninvoiced, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Creates the organization's empty account if it has none.</summary>
    Task OpenAccountAsync(Guid customerId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Moves an open hold's expiry to <paramref name="expiresAt"/> if that is later; false when no open hold was moved.</summary>
    Task<bool> ExtendHoldAsync(Guid reservationId, DateTimeOffset expiresAt, CancellationToken cancellationToken);

    Task<IReadOnlyList<Guid>> ExpiredReservationsAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken);
}
