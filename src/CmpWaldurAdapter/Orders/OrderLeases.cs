using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// One process works on an order at a time, enforced by the database: a lease is taken with a single
/// conditional UPDATE, so two replicas (or a replica and the CLI) can never both win.
/// </summary>
public sealed class OrderLeases(IDbContextFactory<AdapterDbContext> dbs, AdapterInstance instance, TimeProvider clock, IOptionsMonitor<OrdersOptions> options,
    ILogger<OrderLeases> logger)
{
    // Orders this process is working on right now. The database lease keeps other processes out; this set
    // keeps a second worker of this process out, and tells a lost release apart from work in flight.
    private readonly ConcurrentDictionary<Guid, byte> _working = new();

    // The keepers of the leases in use here, so a save that finds its lease gone stops the work like a lost renewal does.
    private readonly ConcurrentDictionary<Guid, Keeper> _keepers = new();

    public string Owner => instance.Id;

    /// <summary>Creates the order's progress record if this is the first time the adapter sees the order.</summary>
    public async Task EnsureRecordAsync(Guid orderUuid, OrderType type, Guid resourceUuid, Guid offeringUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var now = StoredValues.Instant(db, clock.GetUtcNow());
        // A record that exists (seen before, or created a moment ago by another replica taking the order from the shared
        // inbox) leaves the insert doing nothing, rather than failing with a unique violation EF Core would log as an
        // error; the lease decides who works on it.
        await db.Database.ExecuteSqlAsync($"""
            INSERT INTO orders (order_uuid, type, resource_uuid, offering_uuid, phase, completed_steps, attempts, notes, created_at, updated_at)
            VALUES ({StoredValues.Uuid(db, orderUuid)}, {type.ToString()}, {StoredValues.Uuid(db, resourceUuid)}, {StoredValues.Uuid(db, offeringUuid)},
                    {nameof(OrderPhase.Received)}, {string.Empty}, {0}, {string.Empty}, {now}, {now})
            ON CONFLICT DO NOTHING
            """, cancellationToken);
    }

    /// <summary>
    /// Takes the order if nobody holds it, the holder's lease ran out (it crashed), or this process holds it
    /// but works on it no more (the release was lost to a database outage). Not re-entrant: two workers of
    /// the same process are as exclusive as two replicas, because the order is claimed in
    /// <see cref="_working"/> before the database is asked.
    /// </summary>
    public async Task<bool> TryAcquireAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        if (!_working.TryAdd(orderUuid, 0))
        {
            return false;
        }

        try
        {
            // Read after claiming in-process: a sweep that did not see the claim sees a later expiry (see ReleaseOrphanedAsync).
            var now = clock.GetUtcNow();
            var until = now + options.CurrentValue.LeaseDuration;
            var owner = Owner;
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            var taken = await db.Orders
                .Where(o => o.OrderUuid == orderUuid && (o.LeaseOwner == null || o.LeaseExpiresAt < now || o.LeaseOwner == owner))
                .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, owner).SetProperty(o => o.LeaseExpiresAt, until), cancellationToken);
            if (taken == 1)
            {
                if (!await AnotherOrderOfTheResourceIsWorkedOnAsync(db, orderUuid, now, cancellationToken))
                {
                    return true;
                }

                // Orders of one resource run one after the other (a Terminate must not run under its Create's steps).
                // Checked after taking, so of two taken at once at least one sees the other and steps back.
                await db.Orders.Where(o => o.OrderUuid == orderUuid && o.LeaseOwner == owner)
                    .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, (string?)null).SetProperty(o => o.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken);
            }
        }
        catch
        {
            _working.TryRemove(orderUuid, out _);
            throw;
        }

        _working.TryRemove(orderUuid, out _);
        return false;
    }

    private async Task<bool> AnotherOrderOfTheResourceIsWorkedOnAsync(AdapterDbContext db, Guid orderUuid, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var owner = Owner;
        // This process's own leases count only while it works on them: a lost release is no work in flight.
        var working = _working.Keys.Where(o => o != orderUuid).ToList();
        var resource = db.Orders.Where(o => o.OrderUuid == orderUuid).Select(o => o.ResourceUuid);
        return await db.Orders.AnyAsync(o => o.OrderUuid != orderUuid && resource.Contains(o.ResourceUuid)
            && o.LeaseOwner != null && o.LeaseExpiresAt >= now && (o.LeaseOwner != owner || working.Contains(o.OrderUuid)), cancellationToken);
    }


    /// <summary>
    /// The fence of a save made under the lease on <paramref name="orderUuid"/>: run in the save's transaction before it,
    /// it lets the save through only while this process still holds the lease, and locks the record until the save commits,
    /// so a takeover waits for it. A lease another process took over (this one's ran out: a renewal lost to a database
    /// outage or a long pause, or a clock behind the taker's) stops the work under it: the save is refused, the work's token
    /// is cancelled, and the work tells nobody upstream anything more; its new holder does the work.
    /// </summary>
    public async Task FenceAsync(AdapterDbContext db, Guid orderUuid, CancellationToken cancellationToken)
    {
        var owner = Owner;
        // Sets what is there: an update, so PostgreSQL locks the row until the save's transaction ends.
        var held = await db.Orders.Where(o => o.OrderUuid == orderUuid && o.LeaseOwner == owner)
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, owner), cancellationToken);
        if (held == 1)
        {
            return;
        }

        var stopped = _keepers.TryGetValue(orderUuid, out var keeper) ? keeper.Lose("a save under it") : new CancellationToken(canceled: true);
        throw new OperationCanceledException($"The lease on {orderUuid} was taken over by another process; this one saves nothing more of its work.", stopped);
    }

    // The keeper's view of the primary constructor's parameters.
    private TimeSpan RenewEvery => options.CurrentValue.LeaseDuration / 3;

    private TimeProvider Clock => clock;

    /// <summary>Returns whether the lease was still this process's (and is now extended).</summary>
    private async Task<bool> ExtendAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        var until = clock.GetUtcNow() + options.CurrentValue.LeaseDuration;
        var owner = Owner;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        // Only a lease this process still holds: one already taken over stays the other's.
        return await db.Orders.Where(o => o.OrderUuid == orderUuid && o.LeaseOwner == owner)
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseExpiresAt, until), cancellationToken) == 1;
    }

    private void LogLost(Guid orderUuid, string noticedBy) =>
        logger.LogWarning("The lease on {OrderUuid} was taken over by another process (noticed by {NoticedBy}); the work on it here stops and saves nothing more", orderUuid, noticedBy);

    /// <summary>
    /// Keeps this process's lease on an order from running out while it works on it (every third of
    /// <see cref="OrdersOptions.LeaseDuration"/>), until disposed. A step of slow upstream calls with their retries can
    /// outlast one lease; another replica would then take the order and run the same steps at once. The lease still
    /// runs out when this process dies, as it should.
    /// </summary>
    private sealed class Keeper : IAsyncDisposable
    {
        private readonly OrderLeases _leases;
        private readonly Guid _orderUuid;
        private readonly CancellationTokenSource _stop = new();
        private readonly CancellationTokenSource _held;
        private readonly Task _renewing;
        private int _lost;

        public Keeper(OrderLeases leases, Guid orderUuid, CancellationToken cancellationToken)
        {
            _leases = leases;
            _orderUuid = orderUuid;
            _held = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            leases._keepers[orderUuid] = this;
            _renewing = RenewAsync(this, _stop.Token);
        }

        /// <summary>Cancelled once the lease is lost (or the caller's token is): the work under the lease runs under it.</summary>
        public CancellationToken Held => _held.Token;

        public bool Lost => Volatile.Read(ref _lost) == 1;

        /// <summary>The lease is another's now: logs it once and cancels the work under it. Returns the cancelled token.</summary>
        public CancellationToken Lose(string noticedBy)
        {
            if (Interlocked.Exchange(ref _lost, 1) == 0)
            {
                _leases.LogLost(_orderUuid, noticedBy);
                _held.Cancel();
            }

            return _held.Token;
        }

        public async ValueTask DisposeAsync()
        {
            _leases._keepers.TryRemove(new KeyValuePair<Guid, Keeper>(_orderUuid, this));
            await _stop.CancelAsync();
            await _renewing;
            _stop.Dispose();
            _held.Dispose();
        }

        private static async Task RenewAsync(Keeper keeper, CancellationToken stop)
        {
            var leases = keeper._leases;
            using var timer = new PeriodicTimer(leases.RenewEvery, leases.Clock);
            try
            {
                while (await timer.WaitForNextTickAsync(stop))
                {
                    try
                    {
                        if (!await leases.ExtendAsync(keeper._orderUuid, stop))
                        {
                            // Taken over (this lease ran out, or a clock ahead judged it so): the other process works on it now.
                            keeper.Lose("the lease renewal");
                            return;
                        }
                    }
                    catch (Exception exception) when (exception is not OperationCanceledException)
                    {
                        // The database is away for a moment: the next tick tries again, well before the lease runs out.
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Disposed: the work is done and the lease is released by its owner.
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a resource under the lease of the record <paramref name="kind"/> derives from it,
    /// like an order of the resource (so it never runs beside one, nor beside the same work on another replica), and
    /// keeps the lease renewed while it runs. Returns the work's result, or that the lease is held elsewhere and
    /// nothing ran. A record that carries only the lease is removed once nobody holds it.
    /// </summary>
    public Task<LeasedWork<T>> RunOnResourceAsync<T>(ResourceWork kind, Guid resourceUuid, Guid offeringUuid, Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken) =>
        RunLeasedAsync(kind.RecordId(resourceUuid), kind.Type, resourceUuid, offeringUuid, kind.KeepsRecord, work, cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> on a Waldur order under its lease, as <see cref="RunOnResourceAsync{T}"/> runs work on a
    /// resource: the order's record is created if this is the first time the adapter sees the order, and it stays.
    /// </summary>
    public Task<LeasedWork<T>> RunOnOrderAsync<T>(Guid orderUuid, OrderType type, Guid resourceUuid, Guid offeringUuid, Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken) =>
        RunLeasedAsync(orderUuid, type, resourceUuid, offeringUuid, keepsRecord: true, work, cancellationToken);

    /// <summary>
    /// Ensures the record, acquires its lease (or reports busy), keeps it renewed while <paramref name="work"/> runs, and releases it.
    /// The work runs under a token that is cancelled once the lease is found taken over (by a renewal or a <see cref="FenceAsync"/>d
    /// save): then it was cut short and the lease is held elsewhere, which is reported as busy.
    /// </summary>
    private async Task<LeasedWork<T>> RunLeasedAsync<T>(Guid id, OrderType type, Guid resourceUuid, Guid offeringUuid, bool keepsRecord, Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        await EnsureRecordAsync(id, type, resourceUuid, offeringUuid, cancellationToken);
        if (!await TryAcquireAsync(id, cancellationToken))
        {
            if (!keepsRecord)
            {
                await RemoveUnheldAsync(id);
            }

            return new LeasedWork<T>(Busy: true, default!);
        }

        try
        {
            await using var keeping = new Keeper(this, id, cancellationToken);
            try
            {
                return new LeasedWork<T>(Busy: false, await work(keeping.Held));
            }
            catch (OperationCanceledException) when (keeping.Lost && !cancellationToken.IsCancellationRequested)
            {
                return new LeasedWork<T>(Busy: true, default!);
            }
        }
        finally
        {
            await ReleaseAsync(id, removeRecord: !keepsRecord);
        }
    }

    public Task ReleaseAsync(Guid orderUuid) => ReleaseAsync(orderUuid, removeRecord: false);

    private async Task ReleaseAsync(Guid orderUuid, bool removeRecord)
    {
        try
        {
            var owner = Owner;
            await using var db = await dbs.CreateDbContextAsync();
            var held = db.Orders.Where(o => o.OrderUuid == orderUuid && o.LeaseOwner == owner);
            if (removeRecord)
            {
                // Released and removed in one statement: a lease another process took over (this one's ran out) stays its.
                await held.ExecuteDeleteAsync();
            }
            else
            {
                await held.ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, (string?)null).SetProperty(o => o.LeaseExpiresAt, (DateTimeOffset?)null));
            }
        }
        finally
        {
            // Even when the database did not hear the release: this process no longer works on the order,
            // so its lease is an orphan that the next acquire or sweep takes back.
            _working.TryRemove(orderUuid, out _);
        }
    }

    /// <summary>
    /// Removes a lease-only record nobody holds, left by an acquire that found the resource busy. One held (by another
    /// process, or by another worker of this one) is its holder's to remove; a process about to acquire one removed
    /// here finds it gone and is busy this once, as if it had come a moment earlier.
    /// </summary>
    private async Task RemoveUnheldAsync(Guid recordId)
    {
        await using var db = await dbs.CreateDbContextAsync();
        await db.Orders.Where(o => o.OrderUuid == recordId && o.LeaseOwner == null).ExecuteDeleteAsync();
    }

    /// <summary>
    /// Frees the leases this process holds on orders it is not working on (releases lost while the database
    /// was away), so another replica can take them at once instead of waiting for them to expire. Returns how many.
    /// </summary>
    public async Task<int> ReleaseOrphanedAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var working = _working.Keys.ToList();
        // A lease taken after this snapshot expires at or after now + duration, so it is never matched here.
        var takenBefore = now + options.CurrentValue.LeaseDuration;
        var owner = Owner;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.Orders
            .Where(o => o.LeaseOwner == owner && o.LeaseExpiresAt < takenBefore && !working.Contains(o.OrderUuid))
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseOwner, (string?)null).SetProperty(o => o.LeaseExpiresAt, (DateTimeOffset?)null), cancellationToken);
    }
}

/// <summary>
/// Work on a resource that is no Waldur order, run under a lease like an order's (<see cref="OrderLeases.RunOnResourceAsync{T}"/>)
/// on a record of its own in the orders table.
/// </summary>
/// <param name="Purpose">Names the work; with the resource it makes the record's id, the same on every replica and never a Waldur order's.</param>
/// <param name="Type">The order type the record is kept under.</param>
/// <param name="KeepsRecord">
/// Whether the record is the work's progress too, and stays; otherwise it only carries the lease and is removed once
/// nobody holds it, so the orders table keeps no row that looks like an order and never was one.
/// </param>
public sealed record ResourceWork(string Purpose, OrderType Type, bool KeepsRecord)
{
    public Guid RecordId(Guid resourceUuid) =>
        new(SHA256.HashData(Encoding.UTF8.GetBytes(Purpose + ":" + resourceUuid.ToString("N"))).AsSpan(0, 16));
}

/// <summary>
/// What <see cref="OrderLeases.RunOnResourceAsync{T}"/> did: ran the work (<paramref name="Result"/>), or found its lease held
/// elsewhere (<paramref name="Busy"/>, with no result).
/// </summary>
public readonly record struct LeasedWork<T>(bool Busy, T Result);
