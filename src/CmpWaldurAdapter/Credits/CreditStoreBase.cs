using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// Every credit operation as one write transaction over EF Core. Correct on any provider whose write
/// transactions are serialized (SQLite); PostgreSQL overrides the hot paths with single statements and
/// adds the account row lock (<see cref="LockAccountAsync"/>) to the rest.
/// </summary>
internal abstract class CreditStoreBase(IDbContextFactory<AdapterDbContext> dbs) : ICreditStore
{
    protected IDbContextFactory<AdapterDbContext> Dbs { get; } = dbs;

    public virtual Task<ChargeResult> ChargeAsync(ChargeRequest request, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            if (await PriorChargeAsync(db, request.SubscriptionId, request.RequestId, cancellationToken) is { } prior)
            {
                return new ChargeResult(ChargeStatus.Replayed, prior.Credits, await AvailableAsync(db, request.CustomerId, cancellationToken), EntryId: prior.Id);
            }

            if (await ServableResourceAsync(db, request, cancellationToken) is not { } resource)
            {
                return new ChargeResult(ChargeStatus.Refused, 0, await AvailableAsync(db, request.CustomerId, cancellationToken), CreditRefusal.SubscriptionNotServable);
            }

            var credits = request.Credits;
            var debited = await db.CreditAccounts
                .Where(a => a.CustomerId == request.CustomerId && a.Balance - a.Reserved >= credits)
                .ExecuteUpdateAsync(set => set
                    .SetProperty(a => a.Balance, a => a.Balance - credits)
                    .SetProperty(a => a.Version, a => a.Version + 1)
                    .SetProperty(a => a.UpdatedAt, now), cancellationToken);
            if (debited == 0)
            {
                return new ChargeResult(ChargeStatus.Refused, 0, await AvailableAsync(db, request.CustomerId, cancellationToken), CreditRefusal.InsufficientCredits);
            }

            var account = await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == request.CustomerId, cancellationToken);
            db.LedgerEntries.Add(ChargeEntry(entryId, request, resource, credits, account.Balance, null, now));
            await db.SaveChangesAsync(cancellationToken);
            return new ChargeResult(ChargeStatus.Charged, credits, account.Balance - account.Reserved, EntryId: entryId);
        }, cancellationToken);

    public virtual Task<ReservationResult> ReserveAsync(ChargeRequest request, Guid reservationId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            var subscription = await db.Subscriptions.AsNoTracking()
                .Where(s => s.Id == request.SubscriptionId && s.CustomerId == request.CustomerId)
                .Select(s => new { s.Version, s.ResourceUuid, Servable = s.State == SubscriptionState.Active && !s.Paused && !s.Downscaled })
                .FirstOrDefaultAsync(cancellationToken);
            var version = subscription?.Version;
            if (await PriorChargeAsync(db, request.SubscriptionId, request.RequestId, cancellationToken) is { } prior)
            {
                return new ReservationResult(ReservationStatus.AlreadyCharged, null, prior.Credits, await AvailableAsync(db, request.CustomerId, cancellationToken), SubscriptionVersion: version);
            }

            var held = await db.CreditReservations.AsNoTracking()
                .Where(r => r.SubscriptionId == request.SubscriptionId && r.RequestId == request.RequestId)
                .Select(r => new { r.Id, r.Credits })
                .FirstOrDefaultAsync(cancellationToken);
            if (held is not null)
            {
                return new ReservationResult(ReservationStatus.AlreadyHeld, held.Id, held.Credits, await AvailableAsync(db, request.CustomerId, cancellationToken), SubscriptionVersion: version);
            }

            // A hold authorized by an API key also proves that key still live, so callers may cache authentication.
            if (request.Key is { } key
                && !await db.ApiKeys.AsNoTracking().AnyAsync(k => k.Id == key.Id && k.Hash == key.Hash && k.SubscriptionId == request.SubscriptionId && k.RevokedAt == null, cancellationToken))
            {
                return new ReservationResult(ReservationStatus.Refused, null, 0, await AvailableAsync(db, request.CustomerId, cancellationToken), CreditRefusal.KeyRevoked, version);
            }

            if (subscription is not { Servable: true })
            {
                return new ReservationResult(ReservationStatus.Refused, null, 0, await AvailableAsync(db, request.CustomerId, cancellationToken), CreditRefusal.SubscriptionNotServable, version);
            }

            var resource = subscription.ResourceUuid;

            var credits = request.Credits;
            var reserved = await db.CreditAccounts
                .Where(a => a.CustomerId == request.CustomerId && a.Balance - a.Reserved >= credits)
                .ExecuteUpdateAsync(set => set
                    .SetProperty(a => a.Reserved, a => a.Reserved + credits)
                    .SetProperty(a => a.Version, a => a.Version + 1)
                    .SetProperty(a => a.UpdatedAt, now), cancellationToken);
            if (reserved == 0)
            {
                return new ReservationResult(ReservationStatus.Refused, null, 0, await AvailableAsync(db, request.CustomerId, cancellationToken), CreditRefusal.InsufficientCredits, version);
            }

            db.CreditReservations.Add(new CreditReservation
            {
                Id = reservationId,
                CustomerId = request.CustomerId,
                SubscriptionId = request.SubscriptionId,
                ResourceUuid = resource,
                RequestId = request.RequestId,
                ActionClass = request.Action,
                Component = request.Component,
                Credits = credits,
                PriceBookVersion = request.PriceBookVersion,
                CreatedAt = now,
                ExpiresAt = expiresAt,
            });
            await db.SaveChangesAsync(cancellationToken);
            return new ReservationResult(ReservationStatus.Held, reservationId, credits, await AvailableAsync(db, request.CustomerId, cancellationToken), SubscriptionVersion: version);
        }, cancellationToken);

    public virtual Task<SettleResult> SettleAsync(Guid reservationId, long? actualCredits, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            var hold = await db.CreditReservations.AsNoTracking().SingleOrDefaultAsync(r => r.Id == reservationId, cancellationToken);
            if (hold is null)
            {
                var (kind, credits) = await ClosedAsync(db, reservationId, cancellationToken);
                var status = kind switch
                {
                    LedgerEntryKind.Charge => SettleStatus.AlreadySettled,
                    LedgerEntryKind.Release => SettleStatus.AlreadyReleased,
                    _ => SettleStatus.NotFound,
                };
                return new SettleResult(status, kind == LedgerEntryKind.Charge ? credits : 0, 0);
            }

            var amount = CreditRules.SettledAmount(hold.Credits, actualCredits);
            if (await PriorChargeAsync(db, hold.SubscriptionId, hold.RequestId, cancellationToken) is not null)
            {
                var released = await CloseAsync(db, hold, LedgerEntryKind.Release, 0, "the request id was already charged", entryId, now, cancellationToken);
                return new SettleResult(SettleStatus.AlreadyCharged, 0, released);
            }

            var available = await CloseAsync(db, hold, LedgerEntryKind.Charge, amount, null, entryId, now, cancellationToken);
            return new SettleResult(SettleStatus.Settled, amount, available, hold.Component);
        }, cancellationToken);

    public virtual Task<ReleaseResult> ReleaseAsync(Guid reservationId, string reason, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            var hold = await db.CreditReservations.AsNoTracking().SingleOrDefaultAsync(r => r.Id == reservationId, cancellationToken);
            if (hold is null)
            {
                var (kind, credits) = await ClosedAsync(db, reservationId, cancellationToken);
                var status = kind switch
                {
                    LedgerEntryKind.Charge => ReleaseStatus.AlreadySettled,
                    LedgerEntryKind.Release => ReleaseStatus.AlreadyReleased,
                    _ => ReleaseStatus.NotFound,
                };
                return new ReleaseResult(status, credits, 0);
            }

            var available = await CloseAsync(db, hold, LedgerEntryKind.Release, 0, reason, entryId, now, cancellationToken);
            return new ReleaseResult(ReleaseStatus.Released, hold.Credits, available);
        }, cancellationToken);

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

    public Task<CreditAccount> RefreshFundingAsync(Guid customerId, long fundedCredits, BillingPeriod firstUninvoiced, DateTimeOffset now, CancellationToken cancellationToken) =>
        WriteAsync(async db =>
        {
            await EnsureAccountAsync(db, customerId, now, cancellationToken);
            // Under the account lock no charge can commit between the sum and the update.
            await LockAccountAsync(db, customerId, cancellationToken);
            var from = firstUninvoiced.FirstDay;
            var uninvoiced = await db.LedgerEntries
                .Where(e => e.CustomerId == customerId && e.Kind == LedgerEntryKind.Charge && e.Period >= from)
                .SumAsync(e => (long?)e.Credits, cancellationToken) ?? 0;
            var balance = WaldurFundingRules.Balance(fundedCredits, uninvoiced);
            await db.CreditAccounts.Where(a => a.CustomerId == customerId).ExecuteUpdateAsync(set => set
                .SetProperty(a => a.Balance, balance)
                .SetProperty(a => a.FundedCredits, fundedCredits)
                .SetProperty(a => a.FundedAt, now)
                .SetProperty(a => a.FundedFrom, from)
                .SetProperty(a => a.Version, a => a.Version + 1)
                .SetProperty(a => a.UpdatedAt, now), cancellationToken);
            return await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == customerId, cancellationToken);
        }, cancellationToken);

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

    /// <summary>Creates the organization and its empty account if missing.</summary>
    protected virtual async Task EnsureAccountAsync(AdapterDbContext db, Guid customerId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (!await db.Customers.AnyAsync(c => c.Id == customerId, cancellationToken))
        {
            db.Customers.Add(new Customer { Id = customerId, CreatedAt = now, UpdatedAt = now });
        }

        if (!await db.CreditAccounts.AnyAsync(a => a.CustomerId == customerId, cancellationToken))
        {
            db.CreditAccounts.Add(new CreditAccount { CustomerId = customerId, CreatedAt = now, UpdatedAt = now });
        }

        await db.SaveChangesAsync(cancellationToken);
        db.ChangeTracker.Clear();
    }

    /// <summary>Takes the organization's account row lock for the rest of the transaction (no-op where writers are serialized).</summary>
    protected virtual Task LockAccountAsync(AdapterDbContext db, Guid customerId, CancellationToken cancellationToken) => Task.CompletedTask;

    private static Task<Guid?> ServableResourceAsync(AdapterDbContext db, ChargeRequest request, CancellationToken cancellationToken) =>
        db.Subscriptions.AsNoTracking()
            .Where(s => s.Id == request.SubscriptionId && s.CustomerId == request.CustomerId
                && s.State == SubscriptionState.Active && !s.Paused && !s.Downscaled)
            .Select(s => (Guid?)s.ResourceUuid)
            .FirstOrDefaultAsync(cancellationToken);

    private static async Task<(Guid Id, long Credits)?> PriorChargeAsync(AdapterDbContext db, Guid subscriptionId, string requestId, CancellationToken cancellationToken)
    {
        var prior = await db.LedgerEntries.AsNoTracking()
            .Where(e => e.ScopeId == subscriptionId && e.RequestId == requestId && e.Kind == LedgerEntryKind.Charge)
            .Select(e => new { e.Id, e.Credits })
            .FirstOrDefaultAsync(cancellationToken);
        return prior is null ? null : (prior.Id, prior.Credits);
    }

    private static async Task<long> AvailableAsync(AdapterDbContext db, Guid customerId, CancellationToken cancellationToken) =>
        await db.CreditAccounts.AsNoTracking()
            .Where(a => a.CustomerId == customerId)
            .Select(a => (long?)(a.Balance - a.Reserved))
            .FirstOrDefaultAsync(cancellationToken) ?? 0;

    /// <summary>How a hold that no longer exists ended: by a charge, a release, or it never existed.</summary>
    private static async Task<(LedgerEntryKind? Kind, long Credits)> ClosedAsync(AdapterDbContext db, Guid reservationId, CancellationToken cancellationToken)
    {
        var entry = await db.LedgerEntries.AsNoTracking()
            .Where(e => e.ReservationId == reservationId)
            .Select(e => new { e.Kind, e.Credits })
            .FirstOrDefaultAsync(cancellationToken);
        return entry is null ? (null, 0) : (entry.Kind, entry.Credits);
    }

    /// <summary>Removes the hold and books its end: a charge of <paramref name="charged"/> or a release. Returns the credits available after.</summary>
    private static async Task<long> CloseAsync(AdapterDbContext db, CreditReservation hold, LedgerEntryKind kind, long charged, string? reason, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await db.CreditReservations.Where(r => r.Id == hold.Id).ExecuteDeleteAsync(cancellationToken);
        var held = hold.Credits;
        await db.CreditAccounts.Where(a => a.CustomerId == hold.CustomerId).ExecuteUpdateAsync(set => set
            .SetProperty(a => a.Balance, a => a.Balance - charged)
            .SetProperty(a => a.Reserved, a => a.Reserved - held)
            .SetProperty(a => a.Version, a => a.Version + 1)
            .SetProperty(a => a.UpdatedAt, now), cancellationToken);
        var account = await db.CreditAccounts.AsNoTracking().SingleAsync(a => a.CustomerId == hold.CustomerId, cancellationToken);
        db.LedgerEntries.Add(new LedgerEntry
        {
            Id = entryId,
            CustomerId = hold.CustomerId,
            Kind = kind,
            Credits = kind == LedgerEntryKind.Charge ? charged : held,
            BalanceAfter = account.Balance,
            Component = hold.Component,
            ActionClass = hold.ActionClass,
            PriceBookVersion = hold.PriceBookVersion,
            RequestId = hold.RequestId,
            ScopeId = hold.SubscriptionId,
            SubscriptionId = hold.SubscriptionId,
            ResourceUuid = hold.ResourceUuid,
            ReservationId = hold.Id,
            OccurredAt = now,
            Period = BillingPeriod.Of(now).FirstDay,
            Reason = reason,
        });
        await db.SaveChangesAsync(cancellationToken);
        return account.Balance - account.Reserved;
    }

    private static LedgerEntry ChargeEntry(Guid entryId, ChargeRequest request, Guid resource, long credits, long balanceAfter, Guid? reservationId, DateTimeOffset now) => new()
    {
        Id = entryId,
        CustomerId = request.CustomerId,
        Kind = LedgerEntryKind.Charge,
        Credits = credits,
        BalanceAfter = balanceAfter,
        Component = request.Component,
        ActionClass = request.Action,
        PriceBookVersion = request.PriceBookVersion,
        RequestId = request.RequestId,
        ScopeId = request.SubscriptionId,
        SubscriptionId = request.SubscriptionId,
        ResourceUuid = resource,
        ReservationId = reservationId,
        OccurredAt = now,
        Period = BillingPeriod.Of(now).FirstDay,
    };
}

/// <summary>
/// SQLite: one writer at a time. An in-process lock queues this process's writers without busy-waiting,
/// and BEGIN IMMEDIATE takes SQLite's write lock up front, so a concurrent process (a CLI grant while
/// the server runs) waits instead of interleaving between our read and our write.
/// </summary>
internal sealed class SqliteCreditStore(IDbContextFactory<AdapterDbContext> dbs) : CreditStoreBase(dbs), IDisposable
{
    private readonly SemaphoreSlim _writer = new(1, 1);

    protected override async Task<T> WriteAsync<T>(Func<AdapterDbContext, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writer.WaitAsync(cancellationToken);
        try
        {
            await using var db = await Dbs.CreateDbContextAsync(cancellationToken);
            await db.Database.OpenConnectionAsync(cancellationToken);
            var connection = (Microsoft.Data.Sqlite.SqliteConnection)db.Database.GetDbConnection();
            await using var transaction = connection.BeginTransaction(deferred: false);
            await using IDbContextTransaction scope = await db.Database.UseTransactionAsync(transaction, cancellationToken)
                ?? throw new InvalidOperationException("EF Core did not take the SQLite transaction.");
            var result = await work(db);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        finally
        {
            _writer.Release();
        }
    }

    public void Dispose() => _writer.Dispose();
}
