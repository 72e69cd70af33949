using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// One counter of the try page's allowance: demo messages used by a visitor (or a network address) of an
/// offering since <see cref="WindowStart"/>. Kept in the database so every replica counts against the same figure.
/// </summary>
public sealed class TryAllowance
{
    /// <summary><c>visitor|{offering}|{visitor id}</c> or <c>address|{offering}|{address}</c>.</summary>
    public string Key { get; set; } = string.Empty;

    public DateTimeOffset WindowStart { get; set; }

    public int Used { get; set; }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<TryAllowance>(allowance =>
        {
            allowance.ToTable("try_allowances");
            allowance.HasKey(a => a.Key);
            allowance.Property(a => a.Key).HasMaxLength(300);
            allowance.HasIndex(a => a.WindowStart);
        });
}

/// <summary>
/// The try page's allowance: <see cref="WebOptions.TryMessagesPerVisitor"/> per visitor (a signed cookie) and
/// <see cref="WebOptions.TryMessagesPerAddress"/> per network address, per offering, within
/// <see cref="WebOptions.TryWindow"/>. The counts are promises to visitors, so they live in the database and
/// hold across replicas and restarts; each message is taken with conditional UPDATEs, never read-then-write.
/// </summary>
public sealed class TryLimiter(IDbContextFactory<AdapterDbContext> dbs, IOptions<WebOptions> options, TimeProvider clock)
{
    private int _takes;

    /// <summary>Takes one message; false when the visitor or the address has none left. The result says what is left after it.</summary>
    public async Task<(bool Taken, int Remaining)> TryTakeAsync(string offering, string visitor, string address, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        if (Interlocked.Increment(ref _takes) % 500 == 0)
        {
            // Counters of windows that ended only say "nothing used": drop them now and then.
            var ended = now - settings.TryWindow;
            await db.TryAllowances.Where(a => a.WindowStart <= ended).ExecuteDeleteAsync(cancellationToken);
        }

        var visitorKey = VisitorKey(offering, visitor);
        var addressKey = AddressKey(offering, address);
        if (!await TakeOneAsync(db, visitorKey, settings.TryMessagesPerVisitor, now, cancellationToken))
        {
            return (false, 0);
        }

        if (!await TakeOneAsync(db, addressKey, settings.TryMessagesPerAddress, now, cancellationToken))
        {
            await GiveBackOneAsync(db, visitorKey, CancellationToken.None);
            return (false, 0);
        }

        return (true, await RemainingAsync(db, visitorKey, addressKey, now, cancellationToken));
    }

    /// <summary>Gives a message back (the demo agent failed to answer: a failure costs no allowance).</summary>
    public async Task GiveBackAsync(string offering, string visitor, string address)
    {
        await using var db = await dbs.CreateDbContextAsync();
        await GiveBackOneAsync(db, VisitorKey(offering, visitor), CancellationToken.None);
        await GiveBackOneAsync(db, AddressKey(offering, address), CancellationToken.None);
    }

    public async Task<int> RemainingAsync(string offering, string visitor, string address, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await RemainingAsync(db, VisitorKey(offering, visitor), AddressKey(offering, address), clock.GetUtcNow(), cancellationToken);
    }

    private async Task<int> RemainingAsync(AdapterDbContext db, string visitorKey, string addressKey, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var ended = now - settings.TryWindow;
        var used = await db.TryAllowances.AsNoTracking()
            .Where(a => (a.Key == visitorKey || a.Key == addressKey) && a.WindowStart > ended)
            .ToDictionaryAsync(a => a.Key, a => a.Used, cancellationToken);
        var byVisitor = settings.TryMessagesPerVisitor - used.GetValueOrDefault(visitorKey);
        var byAddress = settings.TryMessagesPerAddress - used.GetValueOrDefault(addressKey);
        return Math.Max(0, Math.Min(byVisitor, byAddress));
    }

    /// <summary>
    /// Counts one message against <paramref name="key"/> if it has room: an UPDATE that only matches a counter
    /// under the limit, or one whose window ended (it starts again), or an INSERT of a first counter. Two
    /// replicas racing for the last message both run the UPDATE; the database lets one of them match.
    /// </summary>
    private async Task<bool> TakeOneAsync(AdapterDbContext db, string key, int limit, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (limit <= 0)
        {
            return false;
        }

        var ended = now - options.Value.TryWindow;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (await db.TryAllowances.Where(a => a.Key == key && a.WindowStart > ended && a.Used < limit)
                    .ExecuteUpdateAsync(set => set.SetProperty(a => a.Used, a => a.Used + 1), cancellationToken) == 1)
            {
                return true;
            }

            if (await db.TryAllowances.Where(a => a.Key == key && a.WindowStart <= ended)
                    .ExecuteUpdateAsync(set => set.SetProperty(a => a.Used, 1).SetProperty(a => a.WindowStart, now), cancellationToken) == 1)
            {
                return true;
            }

            if (await db.TryAllowances.AnyAsync(a => a.Key == key, cancellationToken))
            {
                return false; // a current window with no room left
            }

            db.TryAllowances.Add(new TryAllowance { Key = key, WindowStart = now, Used = 1 });
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                return true;
            }
            catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception))
            {
                // Another replica counted this visitor's first message a moment ago: count against its row.
                db.ChangeTracker.Clear();
            }
        }

        return false;
    }

    private static async Task GiveBackOneAsync(AdapterDbContext db, string key, CancellationToken cancellationToken) =>
        await db.TryAllowances.Where(a => a.Key == key && a.Used > 0)
            .ExecuteUpdateAsync(set => set.SetProperty(a => a.Used, a => a.Used - 1), cancellationToken);

    private static string VisitorKey(string offering, string visitor) => Truncate($"visitor|{offering}|{visitor}");

    private static string AddressKey(string offering, string address) => Truncate($"address|{offering}|{address}");

    private static string Truncate(string key) => key.Length <= 300 ? key : key[..300];
}
