using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.Credits;

/// <summary>What a subscription's action costs and under which price book.</summary>
/// <param name="RequestId">Idempotency key, unique per subscription: the same id never charges twice.</param>
/// <param name="Key">The API key the action was authorized with, if any: a hold is refused once that key is revoked or regenerated.</param>
/// <param name="WhileTerminating">
/// A charge the subscription's termination makes for work done before it (a parse that finished after its hold was
/// given back): accepted while the subscription is Terminating, not only while it is servable. Charges only.
/// </param>
public sealed record ChargeRequest(Guid CustomerId, Guid SubscriptionId, ActionClass Action, long Credits, int PriceBookVersion, string RequestId, ApiKeyProof? Key = null, bool WhileTerminating = false)
{
    public string Component => ActionClasses.Component(Action);
}

/// <summary>An API key as presented: its id and the hash of the presented value.</summary>
public sealed record ApiKeyProof(Guid Id, string Hash);

public enum ChargeStatus
{
    /// <summary>Charged now.</summary>
    Charged,

    /// <summary>This request id was charged before: nothing more was charged.</summary>
    Replayed,

    /// <summary>Not charged; see <see cref="ChargeResult.Refusal"/>.</summary>
    Refused,
}

/// <param name="Credits">Credits charged by this request id (now or originally); 0 when refused.</param>
/// <param name="Available">The organization's spendable credits after the call (as last seen when refused).</param>
public sealed record ChargeResult(ChargeStatus Status, long Credits, long Available, CreditRefusal? Refusal = null, Guid? EntryId = null)
{
    public bool IsCharged => Status is ChargeStatus.Charged or ChargeStatus.Replayed;
}

public enum ReservationStatus
{
    /// <summary>The credits are set aside now.</summary>
    Held,

    /// <summary>This request id already holds credits: the same hold is returned.</summary>
    AlreadyHeld,

    /// <summary>This request id was already charged: do not run the action again.</summary>
    AlreadyCharged,

    Refused,
}

/// <param name="SubscriptionVersion">The subscription's row version as the hold saw it (callers holding a cached copy compare it).</param>
public sealed record ReservationResult(ReservationStatus Status, Guid? ReservationId, long Credits, long Available, CreditRefusal? Refusal = null, long? SubscriptionVersion = null)
{
    public bool IsHeld => Status is ReservationStatus.Held or ReservationStatus.AlreadyHeld;
}

public enum SettleStatus
{
    Settled,

    /// <summary>Settled before (a retried settle charges nothing more).</summary>
    AlreadySettled,

    /// <summary>The hold was released (or expired) before: nothing was charged.</summary>
    AlreadyReleased,

    /// <summary>The request id had been charged by another path; the hold was released instead.</summary>
    AlreadyCharged,

    NotFound,
}

/// <param name="Component">The Waldur usage component charged, when <see cref="SettleStatus.Settled"/>.</param>
public sealed record SettleResult(SettleStatus Status, long Credits, long Available, string? Component = null);

public enum ReleaseStatus
{
    Released,

    AlreadyReleased,

    /// <summary>The hold was settled before: a release cannot undo a charge.</summary>
    AlreadySettled,

    NotFound,
}

public sealed record ReleaseResult(ReleaseStatus Status, long Credits, long Available);

/// <param name="Granted">False when the request id was granted before (nothing was added).</param>
public sealed record GrantResult(bool Granted, Guid EntryId, long Credits, long Balance, long Available);

/// <summary>An organization's credits now.</summary>
/// <param name="Exists">False when the organization has never been funded (all figures 0).</param>
/// <param name="CoveredOfferings">
/// Waldur-funded mode, a customer credit limited to some offerings: the served offerings whose subscriptions may spend
/// it (possibly none); null when every subscription may (always in ledger mode).
/// </param>
public sealed record CreditBalance(Guid CustomerId, long Balance, long Reserved, long Available, CreditFunding Funding, bool Exists, DateTimeOffset? FundedAt = null, IReadOnlyList<Guid>? CoveredOfferings = null)
{
    /// <summary>Whether subscriptions of <paramref name="offering"/> may spend these credits (else their paid actions are refused).</summary>
    public bool Covers(Guid offering) => CoveredOfferings is null || CoveredOfferings.Contains(offering);
}

/// <summary>The operation cannot run in the configured funding mode (e.g. a grant when Waldur funds the balance).</summary>
public sealed class CreditFundingException(string message) : InvalidOperationException(message);

/// <summary>A grant's request id already names a grant of another amount: nothing was added.</summary>
public sealed class CreditRequestConflictException(string message) : InvalidOperationException(message);
