using CmpWaldurAdapter.Hosting;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Persistence;

/// <summary>A named lease: while <see cref="ExpiresAt"/> lies ahead, only <see cref="Owner"/> may do the work it names.</summary>
public sealed class DatabaseLease
{
    /// <summary>What the lease guards, e.g. <c>knowledge-connector-sync:{id}</c>.</summary>
    public string Name { get; set; } = string.Empty;

    /// <summary>The adapter instance holding it (<see cref="AdapterInstance.Id"/>).</summary>
    public string Owner { get; set; } = string.Empty;

    public DateTimeOffset ExpiresAt { get; set; }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<DatabaseLease>(lease =>
        {
            lease.ToTable("leases");
            lease.HasKey(l => l.Name);
            lease.Property(l => l.Name).HasMaxLength(200);
            lease.Property(l => l.Owner).HasMaxLength(200);
        });
}

/// <summary>
/// Work that only one process of all replicas may do at a time, decided by the database: a lease is taken
/// by one conditional UPDATE (a lease that ran out) or one INSERT (no lease yet), so two replicas can never
/// both win, on PostgreSQL and SQLite alike. A holder that crashes or loses its release frees it on expiry.
/// Rows given up, or run out a day ago, are deleted by <see cref="ExpiredRowsPurge"/> (a lease per resource would otherwise stay for good).
/// </summary>
public sealed class DatabaseLeases(IDbContextFactory<AdapterDbContext> dbs, AdapterInstance instance, TimeProvider clock)
{
    /// <summary>
    /// Takes the lease for this one holding, trying again every 100 ms for up to <paramref name="wait"/> while another
    /// holds it: for short work that should queue behind a short holder rather than fail. Returns the holding's own
    /// owner token for <see cref="ReleaseAsync(string, string)"/> (so a holder that outlived its lease never frees its
    /// successor's, even in the same process), or null when the lease stayed taken.
    /// </summary>
    public async Task<string?> TryAcquireWaitingAsync(string name, TimeSpan duration, TimeSpan wait, CancellationToken cancellationToken)
    {
        var owner = $"{instance.Id}:{Guid.NewGuid():N}";
        return await TryTakeWaitingAsync(name, owner, duration, wait, cancellationToken) is not null ? owner : null;
    }

    /// <summary>When the lease was taken (it runs from then), or null when it stayed another's for <paramref name="wait"/>.</summary>
    private async Task<DateTimeOffset?> TryTakeWaitingAsync(string name, string owner, TimeSpan duration, TimeSpan wait, CancellationToken cancellationToken)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew(); // real time: the lease's own clock may stand still in tests
        while (true)
        {
            var asked = clock.GetUtcNow();
            if (await TryTakeAsync(name, owner, duration, cancellationToken))
            {
                return asked;
            }

            if (waited.Elapsed >= wait)
            {
                return null;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

    private async Task<bool> TryTakeAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var until = now + duration;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var takenOver = await db.Leases
            .Where(l => l.Name == name && l.ExpiresAt < now)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.Owner, owner).SetProperty(l => l.ExpiresAt, until), cancellationToken);
        if (takenOver == 1)
        {
            return true;
        }

        // No row yet (a new name, or one purged), or held: one INSERT that does nothing when the row
        // exists, so a taker that lost the race for a new name, or finds it held, learns so without the unique violation
        // EF Core would log as an error.
        return await db.Database.ExecuteSqlAsync(
            $"INSERT INTO leases (name, owner, expires_at) VALUES ({name}, {owner}, {StoredValues.Instant(db, until)}) ON CONFLICT DO NOTHING", cancellationToken) == 1;
    }

    /// <summary>
    /// Takes the lease for one holding of long work, renewed while it lasts (every third of <paramref name="duration"/>), so work
    /// that outlasts one lease keeps it; the lease still runs out when this process dies or loses its database for that long.
    /// Null while another holds it. The work runs under <see cref="DatabaseLeaseHolding.Held"/> and fences its saves with
    /// <see cref="DatabaseLeaseHolding.FenceAsync"/>; disposing the holding releases the lease.
    /// </summary>
    public Task<DatabaseLeaseHolding?> TryHoldAsync(string name, TimeSpan duration, CancellationToken cancellationToken) =>
        TryHoldAsync(name, duration, TimeSpan.Zero, cancellationToken);

    /// <summary>
    /// <see cref="TryHoldAsync(string, TimeSpan, CancellationToken)"/>, trying again every 100 ms for up to <paramref name="wait"/>
    /// while another holds it, as <see cref="TryAcquireWaitingAsync"/> does.
    /// </summary>
    public async Task<DatabaseLeaseHolding?> TryHoldAsync(string name, TimeSpan duration, TimeSpan wait, CancellationToken cancellationToken)
    {
        // Its own owner token: a holding that outlived its lease never passes for its successor, even in the same process.
        var owner = $"{instance.Id}:{Guid.NewGuid():N}";
        return await TryTakeWaitingAsync(name, owner, duration, wait, cancellationToken) is { } taken
            ? new DatabaseLeaseHolding(this, name, owner, duration, taken, clock, cancellationToken)
            : null;
    }

    /// <summary>
    /// The fence of a save made under the holding <paramref name="owner"/> names: run in the save's transaction before it, it lets
    /// the save through only while that holding still holds the lease (extending it by <paramref name="duration"/>), and locks the
    /// lease row until the save commits, so a takeover waits for it. Returns false, changing nothing, when the lease is another's now
    /// (this holding's ran out and was taken over) or gone.
    /// </summary>
    public async Task<bool> FenceAsync(AdapterDbContext db, string name, string owner, TimeSpan duration, CancellationToken cancellationToken)
    {
        var until = clock.GetUtcNow() + duration;
        return await db.Leases.Where(l => l.Name == name && l.Owner == owner)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.ExpiresAt, until), cancellationToken) == 1;
    }

    /// <summary>Extends the holding's lease on its own; false when it is another's now.</summary>
    internal async Task<bool> ExtendAsync(string name, string owner, TimeSpan duration, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await FenceAsync(db, name, owner, duration, cancellationToken);
    }

    /// <summary>
    /// Gives up the holding <paramref name="owner"/> names (from <see cref="TryAcquireWaitingAsync"/>), if it still holds it.
    /// The row stays, run out, for the next taker's conditional UPDATE, until the purge deletes it.
    /// </summary>
    public async Task ReleaseAsync(string name, string owner)
    {
        await using var db = await dbs.CreateDbContextAsync();
        await db.Leases.Where(l => l.Name == name && l.Owner == owner)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.Owner, string.Empty).SetProperty(l => l.ExpiresAt, Released));
    }

    /// <summary>The expiry of a released lease: long past, so any taker finds it free.</summary>
    public static readonly DateTimeOffset Released = DateTimeOffset.UnixEpoch;
}

/// <summary>
/// One holding of a <see cref="DatabaseLeases"/> lease (<see cref="DatabaseLeases.TryHoldAsync"/>): renewed until disposed, then released.
/// Once the lease is found another's (by a renewal, or a fenced save), the work under it stops: <see cref="Held"/> is cancelled and
/// every fenced save is refused, so a holder whose lease ran out never saves its work beside its successor's.
/// </summary>
public sealed class DatabaseLeaseHolding : IAsyncDisposable
{
    private readonly DatabaseLeases _leases;
    private readonly TimeSpan _duration;
    private readonly CancellationTokenSource _held;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewing;
    private readonly TimeProvider _clock;
    private long _confirmedTicks; // when the lease was last known this holding's: taken, renewed or fenced (UTC ticks)
    private int _lost;

    internal DatabaseLeaseHolding(DatabaseLeases leases, string name, string owner, TimeSpan duration, DateTimeOffset taken, TimeProvider clock, CancellationToken cancellationToken)
    {
        (_leases, Name, Owner, _duration) = (leases, name, owner, duration);
        _held = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _clock = clock;
        _confirmedTicks = taken.UtcTicks;
        _renewing = RenewAsync(clock, _stop.Token);
    }

    public string Name { get; }

    public string Owner { get; }

    /// <summary>Cancelled once the lease is found another's (or the caller's token is): the work under the lease runs under it.</summary>
    public CancellationToken Held => _held.Token;

    /// <summary>Whether the lease was found taken over by another holder.</summary>
    public bool Lost => Volatile.Read(ref _lost) == 1;

    /// <summary>
    /// Run in a save's transaction before it (see <see cref="DatabaseLeases.FenceAsync"/>): lets the save through while the lease is
    /// still this holding's, extending it; otherwise stops the work and throws <see cref="DatabaseLeaseLostException"/>.
    /// </summary>
    public async Task FenceAsync(AdapterDbContext db, CancellationToken cancellationToken)
    {
        var asked = _clock.GetUtcNow();
        if (Lost || !await _leases.FenceAsync(db, Name, Owner, _duration, cancellationToken))
        {
            Lose();
            throw new DatabaseLeaseLostException(Name);
        }

        Confirmed(asked);
    }

    /// <summary>
    /// Before work no fence can guard (a call to another system that only the holder may make): true while the lease is
    /// still this holding's with at least two thirds of its length ahead. Taken, renewed or fenced within the last third, it
    /// is, with no statement: no other process takes a lease before it runs out. Otherwise it is extended now; false, and
    /// the work stops, once it is another's.
    /// </summary>
    public async Task<bool> EnsureAheadAsync(CancellationToken cancellationToken)
    {
        if (Lost)
        {
            return false;
        }

        if (_clock.GetUtcNow().UtcTicks - Interlocked.Read(ref _confirmedTicks) < (_duration / 3).Ticks)
        {
            return true;
        }

        var asked = _clock.GetUtcNow(); // the extension runs from no earlier than this
        if (await _leases.ExtendAsync(Name, Owner, _duration, cancellationToken))
        {
            Confirmed(asked);
            return true;
        }

        Lose();
        return false;
    }

    private void Confirmed(DateTimeOffset asked) => Interlocked.Exchange(ref _confirmedTicks, asked.UtcTicks);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _renewing;
        _stop.Dispose();
        _held.Dispose();
        if (!Lost)
        {
            await _leases.ReleaseAsync(Name, Owner);
        }
    }

    private void Lose()
    {
        if (Interlocked.Exchange(ref _lost, 1) == 0)
        {
            _held.Cancel();
        }
    }

    private async Task RenewAsync(TimeProvider clock, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(_duration / 3, clock);
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                try
                {
                    var asked = clock.GetUtcNow();
                    if (!await _leases.ExtendAsync(Name, Owner, _duration, stop))
                    {
                        // Taken over: this holding's lease ran out (renewals lost for its whole length) and another holds it now.
                        Lose();
                        return;
                    }

                    Confirmed(asked);
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    // The database is away for a moment: the next tick tries again, well before the lease runs out.
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Disposed: the work is done, and the holding releases its lease.
        }
    }
}

/// <summary>A fenced save found its lease another's: the work under it stops, and saved nothing of that save.</summary>
public sealed class DatabaseLeaseLostException(string name)
    : OperationCanceledException($"The lease {name} was taken over by another holder; this one saves nothing more of its work.");
