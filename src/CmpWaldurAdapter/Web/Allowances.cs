using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// One allowance counter: uses of <see cref="Key"/> since <see cref="WindowStart"/>. Kept in the database so every
/// replica counts against the same figure. The table keeps the name it had when only the try page used it.
/// </summary>
public sealed class Allowance
{
    /// <summary>What is counted, e.g. <c>visitor|{offering}|{visitor id}</c> or <c>widget-day|{subscription}</c>.</summary>
    public string Key { get; set; } = string.Empty;

    public DateTimeOffset WindowStart { get; set; }

    public int Used { get; set; }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<Allowance>(allowance =>
        {
            allowance.ToTable("try_allowances");
            allowance.HasKey(a => a.Key);
            allowance.Property(a => a.Key).HasMaxLength(300);
            allowance.HasIndex(a => a.WindowStart);
        });
}

/// <summary>
/// At most <see cref="Limit"/> uses of <see cref="Key"/> per <see cref="Window"/>. A rolling window starts at its
/// first use (the try page's 24 hours); a fixed one at a whole number of windows (UTC), so a count "per day" starts
/// again at midnight UTC. A limit of 0 or less allows nothing.
/// </summary>
public sealed record AllowanceRule(string Key, int Limit, TimeSpan Window, bool Fixed = false)
{
    /// <summary>A counter whose window started at or before this has ended (it starts again at the next use).</summary>
    internal DateTimeOffset Ended(DateTimeOffset now) => Fixed ? Start(now) - Window : now - Window;

    /// <summary>Where a window that starts now starts.</summary>
    internal DateTimeOffset Start(DateTimeOffset now) =>
        Fixed ? new DateTimeOffset(now.UtcTicks - (now.UtcTicks % Window.Ticks), TimeSpan.Zero) : now;
}

/// <summary>The rule that had no use left, and how long until its window ends.</summary>
public sealed record AllowanceRefusal(AllowanceRule Rule, TimeSpan RetryAfter);

/// <summary>
/// The database's allowance counters (try page, widget). Uses are taken with conditional UPDATEs, never
/// read-then-write, so replicas racing for the last use cannot both get it.
/// </summary>
public sealed class AllowanceCounters(IDbContextFactory<AdapterDbContext> dbs, IOptions<WebOptions> options, TimeProvider clock)
{
    /// <summary>The longest window a counter has (the try window, or the widget's day): older rows say only "nothing used".</summary>
    private TimeSpan KeepFor => options.Value.TryWindow > TimeSpan.FromDays(1) ? options.Value.TryWindow : TimeSpan.FromDays(1);

    private int _takes;

    /// <summary>Takes one use of every rule now (for uses never given back).</summary>
    public Task<AllowanceRefusal?> TakeAsync(IReadOnlyList<AllowanceRule> rules, CancellationToken cancellationToken) =>
        TakeAsync(rules, clock.GetUtcNow(), cancellationToken);

    /// <summary>
    /// Takes one use of every rule, counted at <paramref name="now"/>, or none: when one has nothing left the ones
    /// taken before it are given back and the refusal names it. Null when all were taken. To give a use back, pass
    /// the same instant to <see cref="GiveBackAsync"/>. A rule already out of uses is refused before anything is
    /// written, so a flood of refused requests (each naming a new visitor, say) adds no counters; put the rules
    /// whose keys a client can vary at will last, so a refusal that only shows in a race adds none either.
    /// </summary>
    public async Task<AllowanceRefusal?> TakeAsync(IReadOnlyList<AllowanceRule> rules, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        if (Interlocked.Increment(ref _takes) % 500 == 0)
        {
            var ended = now - KeepFor;
            await db.Allowances.Where(a => a.WindowStart <= ended).ExecuteDeleteAsync(cancellationToken);
        }

        if (await FullAsync(db, rules, now, cancellationToken) is { } full)
        {
            return full;
        }

        for (var i = 0; i < rules.Count; i++)
        {
            if (await TakeOneAsync(db, rules[i], now, cancellationToken) is not { } fullSince)
            {
                continue;
            }

            for (var taken = 0; taken < i; taken++)
            {
                await GiveBackOneAsync(db, rules[taken].Key, now);
            }

            var retryAfter = fullSince + rules[i].Window - now;
            return new AllowanceRefusal(rules[i], retryAfter > TimeSpan.Zero ? retryAfter : TimeSpan.Zero);
        }

        return null;
    }

    /// <summary>
    /// Gives one use back to each counter (what it paid for did not happen); <paramref name="takenAt"/>: the instant
    /// it was taken at (given to <see cref="TakeAsync(IReadOnlyList{AllowanceRule}, DateTimeOffset, CancellationToken)"/>).
    /// A counter whose window started again after that is left alone: the use was counted in the window that ended.
    /// </summary>
    public async Task GiveBackAsync(IEnumerable<string> keys, DateTimeOffset takenAt)
    {
        await using var db = await dbs.CreateDbContextAsync();
        foreach (var key in keys)
        {
            await GiveBackOneAsync(db, key, takenAt);
        }
    }

    /// <summary>Uses counted in each rule's current window, by key (0 for a counter not used in it).</summary>
    public async Task<IReadOnlyDictionary<string, int>> UsedAsync(IReadOnlyList<AllowanceRule> rules, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var keys = rules.Select(r => r.Key).ToList();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var rows = await db.Allowances.AsNoTracking().Where(a => keys.Contains(a.Key)).ToDictionaryAsync(a => a.Key, cancellationToken);
        return rules.ToDictionary(
            r => r.Key,
            r => rows.TryGetValue(r.Key, out var row) && row.WindowStart > r.Ended(now) ? row.Used : 0,
            StringComparer.Ordinal);
    }

    /// <summary>The first rule with no use left in its current window, read without writing anything; null when every rule has room.</summary>
    private static async Task<AllowanceRefusal?> FullAsync(AdapterDbContext db, IReadOnlyList<AllowanceRule> rules, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var keys = rules.Select(r => r.Key).ToList();
        var rows = await db.Allowances.AsNoTracking().Where(a => keys.Contains(a.Key)).ToDictionaryAsync(a => a.Key, cancellationToken);
        foreach (var rule in rules)
        {
            if (rule.Limit <= 0)
            {
                return new AllowanceRefusal(rule, rule.Start(now) + rule.Window - now);
            }

            if (rows.TryGetValue(rule.Key, out var row) && row.WindowStart > rule.Ended(now) && row.Used >= rule.Limit)
            {
                var retryAfter = row.WindowStart + rule.Window - now;
                return new AllowanceRefusal(rule, retryAfter > TimeSpan.Zero ? retryAfter : TimeSpan.Zero);
            }
        }

        return null;
    }

    /// <summary>The longest key a counter has; longer keys are cut (they stay distinct in practice: ids come first).</summary>
    public static string Key(string key) => key.Length <= 300 ? key : key[..300];

    /// <summary>
    /// Counts one use against the rule's key if it has room: an UPDATE that only matches a counter under the limit
    /// in its current window, or one whose window ended (it starts again), or an INSERT of a first counter. Two
    /// replicas racing for the last use both run the UPDATE; the database lets one of them match. Null when counted;
    /// else the start of the full window (for Retry-After).
    /// </summary>
    private static async Task<DateTimeOffset?> TakeOneAsync(AdapterDbContext db, AllowanceRule rule, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var (key, limit, ended, start) = (rule.Key, rule.Limit, rule.Ended(now), rule.Start(now));
        if (limit <= 0)
        {
            return start;
        }

        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (await db.Allowances.Where(a => a.Key == key && a.WindowStart > ended && a.Used < limit)
                    .ExecuteUpdateAsync(set => set.SetProperty(a => a.Used, a => a.Used + 1), cancellationToken) == 1)
            {
                return null;
            }

            if (await db.Allowances.Where(a => a.Key == key && a.WindowStart <= ended)
                    .ExecuteUpdateAsync(set => set.SetProperty(a => a.Used, 1).SetProperty(a => a.WindowStart, start), cancellationToken) == 1)
            {
                return null;
            }

            var counter = await db.Allowances.AsNoTracking().Where(a => a.Key == key)
                .Select(a => new { a.WindowStart, a.Used }).SingleOrDefaultAsync(cancellationToken);
            if (counter is not null)
            {
                if (counter.WindowStart > ended && counter.Used >= limit)
                {
                    return counter.WindowStart; // a current window with no room left
                }

                // It changed between the UPDATEs and this look (another request counted this key's first use,
                // started its window again, or gave a use back): try the UPDATEs again.
                continue;
            }

            db.Allowances.Add(new Allowance { Key = key, WindowStart = start, Used = 1 });
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                return null;
            }
            catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception))
            {
                // Another replica counted this key's first use a moment ago: count against its row.
                db.ChangeTracker.Clear();
            }
        }

        return start; // three rounds of changes under it: refuse rather than spin
    }

    /// <summary>
    /// Gives one use back; a counter that comes back to no uses is deleted (no row says the same), so uses given back
    /// leave no rows behind. A take racing the delete either counted first (the row is kept) or finds no row and
    /// inserts one.
    /// </summary>
    private static async Task GiveBackOneAsync(AdapterDbContext db, string key, DateTimeOffset takenAt)
    {
        if (await db.Allowances.Where(a => a.Key == key && a.Used > 0 && a.WindowStart <= takenAt)
                .ExecuteUpdateAsync(set => set.SetProperty(a => a.Used, a => a.Used - 1), CancellationToken.None) == 1)
        {
            await db.Allowances.Where(a => a.Key == key && a.Used == 0).ExecuteDeleteAsync(CancellationToken.None);
        }
    }
}
