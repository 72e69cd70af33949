using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// What both stores share: the rare operations (grants, funding refreshes) as one EF Core write transaction
/// each, which a store runs its own way (<see cref="WriteAsync"/>) and guards with its own account lock
/// (<see cref="LockAccountAsync"/>). The hot operations (charge, hold, settle, release) are each store's own SQL.
/// </summary>
internal abstract class CreditStoreBase(IDbContextFactory<AdapterDbContext> dbs) : ICreditStore
{
    protected IDbContextFactory<AdapterDbContext> Dbs { get; } = dbs;

    public abstract Task<ChargeResult> ChargeAsync(ChargeRequest request, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    public abstract Task<ReservationResult> ReserveAsync(ChargeRequest request, Guid reservationId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken);

    public abstract Task<SettleResult> SettleAsync(Guid reservationId, long? actualCredits, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    public abstract Task<ReleaseResult> ReleaseAsync(Guid reservationId, string reason, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken);

    public Task<GrantResult> GrantAsync(Guid customerId, long credits, string reason, string requestId, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            await EnsureAccountAsync(db, customerId, now, cancellationToken);
            await LockAccountAsync(db, customerId, cancellationToken);
            var prior = await db.LedgerEntries.AsNoTracking()
                .Where(e => e.ScopeId == customerId && e.RequestId == requestId && e.Kind == LedgerEntryKind.Grant)
                .Select(e => new { e.Id, e.Credits })
                .FirstOrDefaultAsync(cancellationToken);
            if (prior is not null)
            {
                var current = await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == customerId, cancellationToken);
                return new GrantResult(false, prior.Id, prior.Credits, current.Balance, current.Balance - current.Reserved);
            }

            await db.CreditAccounts.Where(a => a.CustomerId == customerId).ExecuteUpdateAsync(set => set
                .SetProperty(a => a.Balance, a => a.Balance + credits)
                .SetProperty(a => a.Version, a => a.Version + 1)
                .SetProperty(a => a.UpdatedAt, now), cancellationToken);
            var account = await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == customerId, cancellationToken);
            db.LedgerEntries.Add(new LedgerEntry
            {
                Id = entryId,
                CustomerId = customerId,
                Kind = LedgerEntryKind.Grant,
                Credits = credits,
                BalanceAfter = account.Balance,
                RequestId = requestId,
                ScopeId = customerId,
                OccurredAt = now,
                Period = BillingPeriod.Of(now).FirstDay,
                Reason = reason,
            });
            await db.SaveChangesAsync(cancellationToken);
            return new GrantResult(true, entryId, credits, account.Balance, account.Balance - account.Reserved);
        }, cancellationToken);

    public Task<CreditAccount> RefreshFundingAsync(Guid customerId, long fundedCredits, IReadOnlySet<Guid>? coveredOfferings, BillingPeriod firstUninvoiced, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            await EnsureAccountAsync(db, customerId, now, cancellationToken);
            // Under the account lock no charge can commit between the sum and the update.
            await LockAccountAsync(db, customerId, cancellationToken);
            var current = await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == customerId, cancellationToken);
            if (current.FundedAt is { } applied && applied > now)
            {
                // Another replica has applied a read of Waldur made after this one: an older read must not put back money
                // the organization no longer has (or take away a top-up).
                return current;
            }

            var from = firstUninvoiced.FirstDay;
            var charges = db.LedgerEntries.Where(e => e.CustomerId == customerId && e.Kind == LedgerEntryKind.Charge && e.Period >= from);
            var covered = coveredOfferings?.ToList();
            if (covered is not null)
            {
                // Waldur takes only the covered offerings' usage off a limited credit; the rest it invoices.
                charges = charges.Where(e => db.Subscriptions.Any(s => s.Id == e.SubscriptionId && covered.Contains(s.OfferingUuid)));
            }

            // Usage of an invoiced month that Waldur had closed before taking all of it was carried into a later month's
            // total (Usage/UsageCarryover): Waldur bills it with that month, so it stays uninvoiced until then.
            var carried = db.UsageCarryovers.Where(c => c.CustomerId == customerId && c.FromPeriod < from && c.IntoPeriod >= from);
            if (covered is not null)
            {
                carried = carried.Where(c => db.Subscriptions.Any(s => s.Id == c.SubscriptionId && covered.Contains(s.OfferingUuid)));
            }

            // Summed here: SQLite stores decimals as text and cannot sum them.
            var carriedCredits = (await carried.Select(c => c.Credits).ToListAsync(cancellationToken)).Sum();
            var uninvoiced = (await charges.SumAsync(e => (long?)e.Credits, cancellationToken) ?? 0) + (long)decimal.Ceiling(carriedCredits);
            var balance = WaldurFundingRules.Balance(fundedCredits, uninvoiced);
            await db.CreditAccounts.Where(a => a.CustomerId == customerId).ExecuteUpdateAsync(set => set
                .SetProperty(a => a.Balance, balance)
                .SetProperty(a => a.FundedCredits, fundedCredits)
                .SetProperty(a => a.FundedAt, now)
                .SetProperty(a => a.FundedFrom, from)
                .SetProperty(a => a.FundedOfferings, covered)
                .SetProperty(a => a.Version, a => a.Version + 1)
                .SetProperty(a => a.UpdatedAt, now), cancellationToken);
            return await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == customerId, cancellationToken);
        }, cancellationToken);

    public Task OpenAccountAsync(Guid customerId, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            await EnsureAccountAsync(db, customerId, now, cancellationToken);
            return true;
        }, cancellationToken);

    // One UPDATE, run as a write like the others (so SQLite's single writer queues it); a settled or released hold
    // has no row left, and an earlier expiry never shortens a hold.
    public Task<bool> ExtendHoldAsync(Guid reservationId, DateTimeOffset expiresAt, CancellationToken cancellationToken) =>
        WriteAsync(async db => await db.CreditReservations
            .Where(r => r.Id == reservationId && r.ExpiresAt < expiresAt)
            .ExecuteUpdateAsync(set => set.SetProperty(r => r.ExpiresAt, expiresAt), cancellationToken) > 0, cancellationToken);

    public async Task<IReadOnlyList<Guid>> ExpiredReservationsAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken)
    {
        await using var db = await Dbs.CreateDbContextAsync(cancellationToken);
        return await db.CreditReservations.AsNoTracking()
            .Where(r => r.ExpiresAt < now)
            .OrderBy(r => r.ExpiresAt)
            .Select(r => r.Id)
            .Take(limit)
            .ToListAsync(cancellationToken);
    }

    /// <summary>Runs <paramref name="work"/> in one write transaction and commits it.</summary>
    protected abstract Task<T> WriteAsync<T>(Func<AdapterDbContext, Task<T>> work, CancellationToken cancellationToken);

    /// <summary>
    /// Creates the organization and its empty account if missing. The organization has no name yet (credits can come
    /// before its first order): the first order or resource sync that names it fills it in.
    /// </summary>
    protected virtual async Task EnsureAccountAsync(AdapterDbContext db, Guid customerId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await CustomerRecords.EnsureAsync(db, customerId, waldurName: null, now, cancellationToken);

        if (!await db.CreditAccounts.AnyAsync(a => a.CustomerId == customerId, cancellationToken))
        {
            db.CreditAccounts.Add(new CreditAccount { CustomerId = customerId, CreatedAt = now, UpdatedAt = now });
        }

        await db.SaveChangesAsync(cancellationToken);
        db.ChangeTracker.Clear();
    }

    /// <summary>Takes the organization's account row lock for the rest of the transaction (no-op where writers are serialized).</summary>
    protected virtual Task LockAccountAsync(AdapterDbContext db, Guid customerId, CancellationToken cancellationToken) => Task.CompletedTask;
}
