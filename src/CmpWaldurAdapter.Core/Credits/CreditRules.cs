namespace CmpWaldurAdapter.Core.Credits;

/// <summary>What a ledger entry records.</summary>
public enum LedgerEntryKind
{
    /// <summary>Credits added to the organization's balance (an operator's grant).</summary>
    Grant,

    /// <summary>Credits spent by a subscription's action (settled): reported to Waldur as usage.</summary>
    Charge,

    /// <summary>A hold given back without charging (the upstream call failed, or the hold expired).</summary>
    Release,
}

/// <summary>Where the organization's balance comes from (configuration <c>Credits:Funding</c>).</summary>
public enum CreditFunding
{
    /// <summary>Operators grant credits (<c>credits grant</c>); the ledger is the only source.</summary>
    Ledger,

    /// <summary>Derived from the organization's Waldur customer credits (money) at <c>Credits:CreditPrice</c>.</summary>
    WaldurCustomerCredits,
}

/// <summary>Why a charge or hold was refused. Each maps to one HTTP answer in the chat API.</summary>
public enum CreditRefusal
{
    /// <summary>The organization's available credits (balance minus holds) are fewer than asked (402).</summary>
    InsufficientCredits,

    /// <summary>The subscription is paused, downscaled, terminated or not provisioned (403).</summary>
    SubscriptionNotServable,

    /// <summary>Waldur-funded mode and the organization's funding has never been read from Waldur (503).</summary>
    FundingUnavailable,

    /// <summary>The API key that authorized the action was revoked or regenerated (401).</summary>
    KeyRevoked,

    /// <summary>
    /// Waldur-funded mode: the organization's customer credit is limited to other offerings, so it cannot pay for
    /// this subscription's actions, whatever the balance (402, saying so).
    /// </summary>
    OfferingNotCovered,
}

/// <summary>The arithmetic every credit operation obeys; no I/O.</summary>
public static class CreditRules
{
    /// <summary>Longest request id accepted (the idempotency key of a charge, unique per subscription).</summary>
    public const int MaxRequestIdLength = 200;

    /// <summary>Largest single charge or grant, far above any price, so sums cannot overflow.</summary>
    public const long MaxAmount = 1_000_000_000_000;

    /// <summary>Throws unless <paramref name="credits"/> is a positive amount a grant may carry.</summary>
    public static long RequirePositive(long credits, string name = "credits")
    {
        if (credits is <= 0 or > MaxAmount)
        {
            throw new ArgumentOutOfRangeException(name, credits, $"Credits must be between 1 and {MaxAmount}.");
        }

        return credits;
    }

    /// <summary>
    /// Throws unless <paramref name="credits"/> is a price a charge or hold may carry. A price book may make an
    /// action free (0): it still goes through the ledger, which re-checks the subscription and the key.
    /// </summary>
    public static long RequirePrice(long credits, string name = "credits")
    {
        if (credits is < 0 or > MaxAmount)
        {
            throw new ArgumentOutOfRangeException(name, credits, $"A price must be between 0 and {MaxAmount} credits.");
        }

        return credits;
    }

    public static string RequireRequestId(string? requestId)
    {
        if (string.IsNullOrWhiteSpace(requestId) || requestId.Length > MaxRequestIdLength)
        {
            throw new ArgumentException($"A request id is required (1–{MaxRequestIdLength} characters).", nameof(requestId));
        }

        return requestId;
    }

    /// <summary>
    /// What a hold settles for: the actual credits when given (never more than held, so settling can
    /// never overdraw what the hold guaranteed), otherwise the full hold.
    /// </summary>
    public static long SettledAmount(long held, long? actual)
    {
        if (actual is not { } value)
        {
            return held;
        }

        if (value < 0 || value > held)
        {
            throw new ArgumentOutOfRangeException(nameof(actual), value, $"A hold of {held} credits settles for 0–{held} credits.");
        }

        return value;
    }

    /// <summary>Credits the organization may still spend: balance minus holds, never shown below zero.</summary>
    public static long Available(long balance, long reserved) => Math.Max(0, balance - reserved);
}
