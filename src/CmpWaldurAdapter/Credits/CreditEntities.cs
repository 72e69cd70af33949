using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// An organization's credits: <see cref="Balance"/> is what it owns, <see cref="Reserved"/> what open
/// holds set aside; only <c>Balance − Reserved</c> can be spent. Changed only by single conditional
/// statements (see <see cref="ICreditStore"/>), never read-modify-write.
/// </summary>
public sealed class CreditAccount
{
    /// <summary>The Waldur customer UUID (one account per organization).</summary>
    public Guid CustomerId { get; set; }

    public long Balance { get; set; }

    public long Reserved { get; set; }

    public long Version { get; set; }

    /// <summary>Waldur-funded mode: the credits the organization's customer credits bought at the last read.</summary>
    public long? FundedCredits { get; set; }

    /// <summary>Waldur-funded mode: when the funding was last read from Waldur.</summary>
    public DateTimeOffset? FundedAt { get; set; }

    /// <summary>Waldur-funded mode: the first month not yet invoiced at that read (its charges were subtracted).</summary>
    public DateOnly? FundedFrom { get; set; }

    /// <summary>
    /// Waldur-funded mode: the served offerings whose subscriptions may spend the funding (the customer credit is
    /// limited to them), or null for all. Kept so a replica that has not read Waldur itself applies it too.
    /// </summary>
    public List<Guid>? FundedOfferings { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }
}

/// <summary>
/// One line of the append-only ledger. A request id makes at most one charge per subscription (and
/// one grant per organization), so a replay never charges twice.
/// </summary>
public sealed class LedgerEntry
{
    public Guid Id { get; set; }

    public Guid CustomerId { get; set; }

    public LedgerEntryKind Kind { get; set; }

    /// <summary>Always positive: credits granted, charged, or released from a hold.</summary>
    public long Credits { get; set; }

    /// <summary>The account balance right after this entry (holds not subtracted): the audit trail that it never went negative.</summary>
    public long BalanceAfter { get; set; }

    /// <summary>The Waldur usage component a charge counts towards (e.g. <c>chat_credits</c>).</summary>
    public string? Component { get; set; }

    public ActionClass? ActionClass { get; set; }

    /// <summary>The price-book version the charge was priced with.</summary>
    public int? PriceBookVersion { get; set; }

    public string? RequestId { get; set; }

    /// <summary>What the request id is unique within: the subscription for charges, the organization for grants.</summary>
    public Guid ScopeId { get; set; }

    public Guid? SubscriptionId { get; set; }

    /// <summary>The Waldur resource the charge is reported under.</summary>
    public Guid? ResourceUuid { get; set; }

    /// <summary>The hold a charge or release closed.</summary>
    public Guid? ReservationId { get; set; }

    public DateTimeOffset OccurredAt { get; set; }

    /// <summary>First day of the UTC month of <see cref="OccurredAt"/>: the Waldur billing period.</summary>
    public DateOnly Period { get; set; }

    /// <summary>Why (grants and releases): an operator's reason, an upstream failure, an expired hold.</summary>
    public string? Reason { get; set; }
}

/// <summary>An open hold: credits set aside for an action in progress, settled or released later (or released when it expires).</summary>
public sealed class CreditReservation
{
    public Guid Id { get; set; }

    public Guid CustomerId { get; set; }

    public Guid SubscriptionId { get; set; }

    public Guid ResourceUuid { get; set; }

    public string RequestId { get; set; } = string.Empty;

    public ActionClass ActionClass { get; set; }

    public string Component { get; set; } = string.Empty;

    public long Credits { get; set; }

    public int PriceBookVersion { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }
}
