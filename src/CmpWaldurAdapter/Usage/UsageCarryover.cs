using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// The part of a resource's component total for a month Waldur no longer takes usage for (it refused the month as a past
/// billing period) that Waldur does not hold: reported as part of a later month's total instead. One row per resource,
/// component and closed month (the key), written once by whichever replica or run gets there first, so the amount is
/// computed once and never changes. A row of 0 credits still records that the month is closed for the component.
/// </summary>
public sealed class UsageCarryover
{
    public Guid ResourceUuid { get; set; }

    public required string Component { get; set; }

    /// <summary>First day of the closed UTC month the credits were charged in (or carried into).</summary>
    public DateOnly FromPeriod { get; set; }

    /// <summary>First day of the UTC month whose reported total includes them (the current month when carried).</summary>
    public DateOnly IntoPeriod { get; set; }

    /// <summary>Our total for the closed month less what Waldur holds for it, never negative; two decimals at most.</summary>
    public decimal Credits { get; set; }

    public Guid? SubscriptionId { get; set; }

    /// <summary>The organization Waldur invoices the later month to (the funding balance counts the credits until then).</summary>
    public Guid? CustomerId { get; set; }

    public DateTimeOffset CarriedAt { get; set; }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<UsageCarryover>(carry =>
        {
            carry.ToTable("usage_carryovers", table => table.HasCheckConstraint("ck_usage_carryovers_credits", "credits >= 0"));
            carry.HasKey(c => new { c.ResourceUuid, c.Component, c.FromPeriod });
            carry.Property(c => c.Component).HasMaxLength(64);
            carry.Property(c => c.Credits).HasPrecision(20, 2);
            carry.HasIndex(c => c.IntoPeriod);
            carry.HasIndex(c => new { c.CustomerId, c.IntoPeriod });
        });
}
