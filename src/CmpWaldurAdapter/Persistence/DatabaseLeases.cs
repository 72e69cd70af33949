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
/// </summary>
public sealed class DatabaseLeases(IDbContextFactory<AdapterDbContext> dbs, AdapterInstance instance, TimeProvider clock)
{
    /// <summary>Takes the lease for <paramref name="duration"/>; false while another process (or another caller here) holds it.</summary>
    public Task<bool> TryAcquireAsync(string name, TimeSpan duration, CancellationToken cancellationToken) =>
        TryTakeAsync(name, instance.Id, duration, cancellationToken);

    /// <summary>
    /// Takes the lease for this one holding, trying again every 100 ms for up to <paramref name="wait"/> while another
    /// holds it: for short work that should queue behind a short holder rather than fail. Returns the holding's own
    /// owner token for <see cref="ReleaseAsync(string, string)"/> (so a holder that outlived its lease never frees its
    /// successor's, even in the same process), or null when the lease stayed taken.
    /// </summary>
    public async Task<string?> TryAcquireWaitingAsync(string name, TimeSpan duration, TimeSpan wait, CancellationToken cancellationToken)
    {
        var owner = $"{instance.Id}:{Guid.NewGuid():N}";
        var waited = System.Diagnostics.Stopwatch.StartNew(); // real time: the lease's own clock may stand still in tests
        while (!await TryTakeAsync(name, owner, duration, cancellationToken))
        {
            if (waited.Elapsed >= wait)
            {
                return null;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        return owner;
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

        // Held (the usual answer while someone works): said without a failing INSERT, which would log an error each try.
        if (await db.Leases.AnyAsync(l => l.Name == name, cancellationToken))
        {
            return false;
        }

        db.Leases.Add(new DatabaseLease { Name = name, Owner = owner, ExpiresAt = until });
        try
        {
            await db.SaveChangesAsync(cancellationToken);
            return true;
        }
        catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception))
        {
            return false;
        }
    }

    /// <summary>Gives the lease up if this process still holds it (one that expired and was taken over stays with its new owner).</summary>
    public Task ReleaseAsync(string name) => ReleaseAsync(name, instance.Id);

    /// <summary>Gives up the holding <paramref name="owner"/> names (from <see cref="TryAcquireWaitingAsync"/>), if it still holds it.</summary>
    public async Task ReleaseAsync(string name, string owner)
    {
        await using var db = await dbs.CreateDbContextAsync();
        await db.Leases.Where(l => l.Name == name && l.Owner == owner).ExecuteDeleteAsync();
    }
}
