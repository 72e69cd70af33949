using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// The credit tables. The ledger and holds carry no foreign keys on purpose: on PostgreSQL every
/// foreign-key check takes a KEY SHARE lock on the parent row, and thousands of concurrent charges
/// of one organization would queue on that row's multixact. The account row is the one lock.
/// </summary>
internal static class CreditsModel
{
    /// <summary>The partial unique index: one charge per request id per subscription, one grant per request id per organization.</summary>
    public const string UniqueKinds = "kind IN ('Charge', 'Grant')";

    public static void Configure(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<CreditAccount>(account =>
        {
            account.ToTable("credit_accounts", table =>
            {
                // The last line of defence: no code path may overdraw or over-release.
                table.HasCheckConstraint("ck_credit_accounts_balance", "balance >= 0");
                table.HasCheckConstraint("ck_credit_accounts_reserved", "reserved >= 0");
            });
            account.HasKey(a => a.CustomerId);
            account.Property(a => a.CustomerId).ValueGeneratedNever();
            account.HasOne<Customer>().WithOne().HasForeignKey<CreditAccount>(a => a.CustomerId).OnDelete(DeleteBehavior.Restrict);
        });

        modelBuilder.Entity<LedgerEntry>(entry =>
        {
            entry.ToTable("credit_ledger_entries", table => table.HasCheckConstraint("ck_credit_ledger_entries_credits", "credits >= 0"));
            entry.HasKey(e => e.Id);
            entry.Property(e => e.Id).ValueGeneratedNever();
            entry.Property(e => e.Kind).HasConversion<string>().HasMaxLength(20);
            entry.Property(e => e.ActionClass).HasConversion<string>().HasMaxLength(40);
            entry.Property(e => e.Component).HasMaxLength(64);
            entry.Property(e => e.RequestId).HasMaxLength(Core.Credits.CreditRules.MaxRequestIdLength);
            entry.Property(e => e.Reason).HasMaxLength(500);
            entry.HasIndex(e => new { e.ScopeId, e.RequestId }).IsUnique().HasFilter(UniqueKinds);
            entry.HasIndex(e => new { e.CustomerId, e.Period });
            entry.HasIndex(e => new { e.Period, e.ResourceUuid });
            entry.HasIndex(e => e.ReservationId).HasFilter("reservation_id IS NOT NULL");
        });

        modelBuilder.Entity<CreditReservation>(reservation =>
        {
            reservation.ToTable("credit_reservations", table => table.HasCheckConstraint("ck_credit_reservations_credits", "credits >= 0"));
            reservation.HasKey(r => r.Id);
            reservation.Property(r => r.Id).ValueGeneratedNever();
            reservation.Property(r => r.ActionClass).HasConversion<string>().HasMaxLength(40);
            reservation.Property(r => r.Component).HasMaxLength(64);
            reservation.Property(r => r.RequestId).HasMaxLength(Core.Credits.CreditRules.MaxRequestIdLength);
            reservation.HasIndex(r => new { r.SubscriptionId, r.RequestId }).IsUnique();
            reservation.HasIndex(r => r.ExpiresAt);
        });
    }
}
