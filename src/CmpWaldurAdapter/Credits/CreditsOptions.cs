using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Core.Credits;

namespace CmpWaldurAdapter.Credits;

/// <summary>How organizations are funded and how holds behave (configuration section <c>Credits</c>).</summary>
public sealed class CreditsOptions : IValidatableObject
{
    public const string SectionName = "Credits";

    /// <summary><c>Ledger</c> (operators grant credits) or <c>WaldurCustomerCredits</c> (derived from Waldur's customer credits).</summary>
    public CreditFunding Funding { get; set; } = CreditFunding.Ledger;

    /// <summary>Waldur-funded mode: the money one credit costs (the plan's unit price of the credit components).</summary>
    public decimal CreditPrice { get; set; }

    /// <summary>Waldur-funded mode: how long a read of the customer credits is trusted before it is read again.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan FundingCacheLifetime { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Waldur-funded mode: the longest a charge waits for Waldur; after that the last known funding is used.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:10:00")]
    public TimeSpan FundingTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Waldur-funded mode: Waldur's INVOICE_FINALIZATION_GRACE_PERIOD_HOURS (the previous month stays open this long after the 1st).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "31.00:00:00")]
    public TimeSpan InvoiceFinalizationGrace { get; set; } = TimeSpan.Zero;

    /// <summary>
    /// A hold not settled or released within this time is released by the sweeper (a crashed request never pins credits).
    /// Longer than the longest request one hold pays for (<see cref="ReservationTimeoutValidation"/>).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "30.00:00:00")]
    public TimeSpan ReservationTimeout { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How often the sweeper looks for expired holds.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ReservationSweepInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often subscriptions' monthly spend is checked against their spend alerts.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan SpendAlertCheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Funding == CreditFunding.WaldurCustomerCredits && CreditPrice <= 0)
        {
            yield return new ValidationResult("Credits:CreditPrice must be a positive amount of money when Credits:Funding is WaldurCustomerCredits.", [nameof(CreditPrice)]);
        }
    }
}
