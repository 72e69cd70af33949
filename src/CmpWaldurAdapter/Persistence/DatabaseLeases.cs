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
    public async Task<bool> TryAcquireAsync(string name, TimeSpan duration, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var until = now + duration;
        var owner = instance.Id;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var takenOver = await db.Leases
            .Where(l => l.Name == name && l.ExpiresAt < now)
            .ExecuteUpdateAsync(set => set.SetProperty(l => l.Owner, owner).SetProperty(l => l.ExpiresAt, until), cancellationToken);
        if (takenOver == 1)
        {
            return true;
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

    /// <summary>
    /// Takes the lease, trying again every 100 ms for up to <paramref name="wait"/> while another holds it: for short
    /// work that should queue behind a short holder rather than fail. False when it stayed taken.
    /// </summary>
    public async Task<bool> TryAcquireWaitingAsync(string name, TimeSpan duration, TimeSpan wait, CancellationToken cancellationToken)
    {
        var waited = System.Diagnostics.Stopwatch.StartNew(); // real time: the lease's own clock may stand still in tests
        while (!await TryAcquireAsync(name, duration, cancellationToken))
        {
            if (waited.Elapsed >= wait)
            {
                return false;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }

        return true;
    }

    /// <summary>Gives the lease up if this process still holds it (one that expired and was taken over stays with its new owner).</summary>
    public async Task ReleaseAsync(string name)
    {
        var owner = instance.Id;
        await using var db = await dbs.CreateDbContextAsync();
        await db.Leases.Where(l => l.Name == name && l.Owner == owner).ExecuteDeleteAsync();
    }
}
