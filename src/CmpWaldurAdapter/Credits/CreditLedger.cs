using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using CmpWaldurAdapter.Observability;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// The organization's credit ledger: reserve → settle → release, atomic in the database, never below
/// zero, never refusing while enough credits remain, idempotent per request id. A failed upstream call
/// is released, not charged; a hold nobody closes is released when it expires.
/// </summary>
public sealed class CreditLedger(ICreditStore store, WaldurFunding funding, IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock, IOptionsMonitor<CreditsOptions> options, ILogger<CreditLedger> logger, AdapterMetrics metrics)
{
    private readonly AdapterMetrics _metrics = metrics;
    private readonly ICreditStore _store = store;
    private readonly WaldurFunding _funding = funding;
    private readonly IDbContextFactory<AdapterDbContext> _dbs = dbs;
    private readonly TimeProvider _clock = clock;
    private readonly IOptionsMonitor<CreditsOptions> _options = options;
    private readonly ILogger<CreditLedger> _logger = logger;

    /// <summary>Sets <paramref name="credits"/> aside for an action about to run; settle or release the hold afterwards.</summary>
    /// <param name="offeringUuid">The subscription's offering: a Waldur customer credit limited to others does not pay for it.</param>
    /// <param name="key">The key that authorized the action, if any: the hold is refused (<see cref="CreditRefusal.KeyRevoked"/>) once it is revoked or regenerated.</param>
    /// <param name="lifetime">
    /// How long the hold lives before the sweeper releases it; <see cref="CreditsOptions.ReservationTimeout"/> when null.
    /// For actions known to run longer than that (a document's parse), so their credits stay set aside until they finish.
    /// </param>
    public async Task<ReservationResult> ReserveAsync(Guid customerId, Guid subscriptionId, Guid offeringUuid, ActionClass action, long credits, int priceBookVersion, string requestId, ApiKeyProof? key = null, TimeSpan? lifetime = null, CancellationToken cancellationToken = default)
    {
        if (lifetime is { } own && own <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(lifetime), own, "A hold's lifetime must be positive.");
        }

        var request = Request(customerId, subscriptionId, action, credits, priceBookVersion, requestId) with { Key = key };
        // A free action needs no funding, so it is served while Waldur cannot be read.
        if (credits > 0 && await _funding.RefusalAsync(customerId, offeringUuid, cancellationToken) is { } unfunded)
        {
            LogRefusal(unfunded, request);
            return new ReservationResult(ReservationStatus.Refused, null, 0, 0, unfunded);
        }

        var now = _clock.GetUtcNow();
        var expiresAt = now + (lifetime ?? _options.CurrentValue.ReservationTimeout);
        var result = await _store.ReserveAsync(request, Guid.CreateVersion7(now), now, expiresAt, cancellationToken);
        if (await OpenedForFreeActionAsync(result.Refusal, request, now, cancellationToken))
        {
            result = await _store.ReserveAsync(request, Guid.CreateVersion7(now), now, expiresAt, cancellationToken);
        }

        LogRefusal(result.Refusal, request);
        // Holds can exceed a Waldur-funded balance that Waldur lowered: show 0, not a negative figure.
        return result with { Available = Math.Max(0, result.Available) };
    }

    /// <summary>Charges the hold: its full amount, or <paramref name="actualCredits"/> (0 to the held amount); the rest is given back.</summary>
    public async Task<SettleResult> SettleAsync(Guid reservationId, long? actualCredits = null, CancellationToken cancellationToken = default)
    {
        var now = _clock.GetUtcNow();
        var entryId = Guid.CreateVersion7(now);
        var result = await _store.SettleAsync(reservationId, actualCredits, entryId, now, cancellationToken);
        if (result.Status == SettleStatus.Settled && result.Credits > 0)
        {
            CountCharged(result.Component, result.Credits);
        }

        return result;
    }

    /// <summary>Gives the hold back without charging (the upstream call failed or was cancelled).</summary>
    public Task<ReleaseResult> ReleaseAsync(Guid reservationId, string reason = "the action failed", CancellationToken cancellationToken = default)
    {
        var now = _clock.GetUtcNow();
        return _store.ReleaseAsync(reservationId, Truncate(reason), Guid.CreateVersion7(now), now, cancellationToken);
    }

    /// <summary>
    /// Keeps an open hold alive until <paramref name="expiresAt"/> (never earlier than it already was), for an action
    /// still running past the lifetime it was reserved with. False when the hold is no longer open or already lives longer.
    /// </summary>
    public Task<bool> ExtendHoldAsync(Guid reservationId, DateTimeOffset expiresAt, CancellationToken cancellationToken = default) =>
        _store.ExtendHoldAsync(reservationId, expiresAt, cancellationToken);

    /// <summary>
    /// Reserve and settle in one: charges <paramref name="credits"/> now if the organization has them. The
    /// database does both in one atomic step (no hold row), so a fast action costs one round trip.
    /// </summary>
    /// <param name="offeringUuid">The subscription's offering: a Waldur customer credit limited to others does not pay for it.</param>
    /// <param name="whileTerminating">The subscription's termination charges work done before it: see <see cref="ChargeRequest.WhileTerminating"/>.</param>
    public async Task<ChargeResult> ChargeAsync(Guid customerId, Guid subscriptionId, Guid offeringUuid, ActionClass action, long credits, int priceBookVersion, string requestId, bool whileTerminating = false, CancellationToken cancellationToken = default)
    {
        var request = Request(customerId, subscriptionId, action, credits, priceBookVersion, requestId) with { WhileTerminating = whileTerminating };
        if (credits > 0 && await _funding.RefusalAsync(customerId, offeringUuid, cancellationToken) is { } unfunded)
        {
            LogRefusal(unfunded, request);
            return new ChargeResult(ChargeStatus.Refused, 0, 0, unfunded);
        }

        var now = _clock.GetUtcNow();
        var result = await _store.ChargeAsync(request, Guid.CreateVersion7(now), now, cancellationToken);
        if (await OpenedForFreeActionAsync(result.Refusal, request, now, cancellationToken))
        {
            result = await _store.ChargeAsync(request, Guid.CreateVersion7(now), now, cancellationToken);
        }

        LogRefusal(result.Refusal, request);
        if (result.Status == ChargeStatus.Charged)
        {
            CountCharged(request.Component, result.Credits);
        }

        return result with { Available = Math.Max(0, result.Available) };
    }

    /// <summary>
    /// Adds credits to the organization (ledger funding only). The same <paramref name="requestId"/> grants once.
    /// </summary>
    public async Task<GrantResult> GrantAsync(Guid customerId, long credits, string reason, string? requestId = null, CancellationToken cancellationToken = default)
    {
        CreditRules.RequirePositive(credits);
        if (string.IsNullOrWhiteSpace(reason))
        {
            throw new ArgumentException("A grant needs a reason (it is kept in the ledger).", nameof(reason));
        }

        if (_options.CurrentValue.Funding != CreditFunding.Ledger)
        {
            throw new CreditFundingException("Credits:Funding is WaldurCustomerCredits: the balance comes from the organization's customer credits in Waldur, so grant money there instead.");
        }

        var now = _clock.GetUtcNow();
        var id = requestId is null ? Guid.NewGuid().ToString() : CreditRules.RequireRequestId(requestId);
        var result = await _store.GrantAsync(customerId, credits, Truncate(reason), id, Guid.CreateVersion7(now), now, cancellationToken);
        // A request id names one grant: reused for another amount (a corrected typo, say) it adds nothing, and a
        // caller told "replayed" would take the organization to have what it asked for.
        if (!result.Granted && result.Credits != credits)
        {
            throw new CreditRequestConflictException($"Request id {id} already granted {result.Credits} credits to {customerId}, not {credits}; nothing added. Use a new request id for another grant.");
        }

        _logger.LogInformation("Granted {Credits} credits to organization {CustomerId} ({Reason}); balance {Balance}{Replay}",
            credits, customerId, reason, result.Balance, result.Granted ? string.Empty : " (replayed request: nothing added)");
        return result;
    }

    /// <summary>
    /// The organization's balance, holds and spendable credits (refreshed from Waldur first in Waldur-funded mode), and
    /// the offerings a limited customer credit covers.
    /// </summary>
    public async Task<CreditBalance> BalanceAsync(Guid customerId, CancellationToken cancellationToken = default)
    {
        await _funding.EnsureFundedAsync(customerId, cancellationToken);
        return await StoredBalanceAsync(customerId, cancellationToken);
    }

    /// <summary>
    /// The balance after reading Waldur's funding now, past the cache (the CLI's <c>credits balance</c>); with why Waldur's
    /// funding could not be read, when it could not (the balance is then the last known one, as of its <c>FundedAt</c>).
    /// Ledger mode reads nothing and never fails.
    /// </summary>
    public async Task<(CreditBalance Balance, string? FundingFailure)> FreshBalanceAsync(Guid customerId, CancellationToken cancellationToken = default)
    {
        var failure = await _funding.ReadNowAsync(customerId, cancellationToken);
        return (await StoredBalanceAsync(customerId, cancellationToken), failure);
    }

    private async Task<CreditBalance> StoredBalanceAsync(Guid customerId, CancellationToken cancellationToken)
    {
        await using var db = await _dbs.CreateDbContextAsync(cancellationToken);
        var account = await db.CreditAccounts.AsNoTracking().SingleOrDefaultAsync(a => a.CustomerId == customerId, cancellationToken);
        var funding = _options.CurrentValue.Funding;
        // The coverage a Waldur read left on the account no longer applies once the ledger funds the balance.
        var covered = funding == CreditFunding.Ledger ? null : account?.FundedOfferings?.Order().ToList();
        return account is null
            ? new CreditBalance(customerId, 0, 0, 0, funding, Exists: false)
            : new CreditBalance(customerId, account.Balance, account.Reserved, CreditRules.Available(account.Balance, account.Reserved), funding, Exists: true, account.FundedAt, covered);
    }

    /// <summary>Releases holds past their expiry (<see cref="CreditsOptions.ReservationTimeout"/> or their own lifetime). Returns how many.</summary>
    public async Task<int> ReleaseExpiredAsync(CancellationToken cancellationToken = default)
    {
        var released = 0;
        while (true)
        {
            var expired = await _store.ExpiredReservationsAsync(_clock.GetUtcNow(), 200, cancellationToken);
            foreach (var id in expired)
            {
                var result = await ReleaseAsync(id, "the hold expired before it was settled", cancellationToken);
                released += result.Status == ReleaseStatus.Released ? 1 : 0;
            }

            if (expired.Count < 200)
            {
                break;
            }
        }

        if (released > 0)
        {
            _logger.LogWarning("Released {Count} expired credit hold(s): their requests never settled", released);
        }

        return released;
    }

    private static ChargeRequest Request(Guid customerId, Guid subscriptionId, ActionClass action, long credits, int priceBookVersion, string requestId)
    {
        CreditRules.RequirePrice(credits);
        CreditRules.RequireRequestId(requestId);
        return new ChargeRequest(customerId, subscriptionId, action, credits, priceBookVersion, requestId);
    }

    /// <summary>
    /// A free action is refused as unaffordable only when its organization has no account yet (nobody granted it
    /// anything): opens the empty account so the caller can try once more. Paid actions are never retried.
    /// </summary>
    private async Task<bool> OpenedForFreeActionAsync(CreditRefusal? refusal, ChargeRequest request, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (request.Credits != 0 || refusal != CreditRefusal.InsufficientCredits)
        {
            return false;
        }

        await _store.OpenAccountAsync(request.CustomerId, now, cancellationToken);
        return true;
    }

    private void LogRefusal(CreditRefusal? refusal, ChargeRequest request)
    {
        if (refusal is { } reason)
        {
            _logger.LogDebug("Refused {Credits} credits for subscription {SubscriptionId} ({Refusal})", request.Credits, request.SubscriptionId, reason);
        }
    }

    private void CountCharged(string? component, long credits) =>
        _metrics.CreditsCharged.WithLabels(component ?? "unknown").Inc(credits);

    private static string Truncate(string text) => text.Length <= 500 ? text : text[..500];
}
