using System.Globalization;
using System.Text;
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
/// The database's allowance counters (try page, widget). Uses are taken with conditional upserts, never
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
    /// taken with it are given back and the refusal names it. Null when all were taken. To give a use back, pass
    /// the same instant to <see cref="GiveBackAsync"/>. A rule already out of uses is refused before anything is
    /// written, so a flood of refused requests (each naming a new visitor, say) adds no counters; when several are
    /// full the refusal names the first in <paramref name="rules"/>. All uses are taken in one round trip, however
    /// many rules there are.
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

        var taken = await TakeEachAsync(db, rules, now, cancellationToken);
        var refused = Array.IndexOf(taken, false);
        if (refused < 0)
        {
            return null;
        }

        // Another request took a rule's last use between the read and the take: give back what this one took. For
        // that moment it held uses of the other rules too, so a request wanting the last of one may be refused.
        for (var i = 0; i < rules.Count; i++)
        {
            if (taken[i])
            {
                await GiveBackOneAsync(db, rules[i].Key, now);
            }
        }

        var rule = rules[refused];
        return await FullAsync(db, [rule], now, cancellationToken) ?? new AllowanceRefusal(rule, rule.Start(now) + rule.Window - now);
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
    /// Counts one use against each rule's key where it has room, sent as one command (one round trip): per rule an
    /// INSERT of a first counter that, when the counter exists, UPDATEs it only if its window ended (it starts again)
    /// or it is under the limit. The database runs each atomically, so two replicas racing for the last use cannot
    /// both get it, and two racing for a first use both count. Whether each rule's use was taken, by rule.
    /// </summary>
    private static async Task<bool[]> TakeEachAsync(AdapterDbContext db, IReadOnlyList<AllowanceRule> rules, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Parameters as the model stores them (SQLite keeps instants as UTC ticks).
        var allowance = db.Model.FindEntityType(typeof(Allowance))!;
        var key = allowance.FindProperty(nameof(Allowance.Key))!.GetRelationalTypeMapping();
        var instant = allowance.FindProperty(nameof(Allowance.WindowStart))!.GetRelationalTypeMapping();
        var count = allowance.FindProperty(nameof(Allowance.Used))!.GetRelationalTypeMapping();

        await db.Database.OpenConnectionAsync(cancellationToken);
        await using var command = db.Database.GetDbConnection().CreateCommand();
        var sql = new StringBuilder();
        // In key order: on PostgreSQL the statements of one command hold their row locks until its end, and two
        // requests sharing counters then lock them in the same order, never waiting for each other in a circle.
        var order = Enumerable.Range(0, rules.Count).OrderBy(i => rules[i].Key, StringComparer.Ordinal).ToArray();
        for (var n = 0; n < order.Length; n++)
        {
            var rule = rules[order[n]];
            sql.Append(CultureInfo.InvariantCulture, $"""
                INSERT INTO try_allowances AS a ("key", window_start, used) VALUES (@key{n}, @start{n}, 1)
                ON CONFLICT ("key") DO UPDATE SET
                    used = CASE WHEN a.window_start <= @ended{n} THEN 1 ELSE a.used + 1 END,
                    window_start = CASE WHEN a.window_start <= @ended{n} THEN @start{n} ELSE a.window_start END
                WHERE a.window_start <= @ended{n} OR a.used < @limit{n}
                RETURNING "key";

                """);
            command.Parameters.Add(key.CreateParameter(command, $"key{n}", rule.Key));
            command.Parameters.Add(instant.CreateParameter(command, $"start{n}", rule.Start(now)));
            command.Parameters.Add(instant.CreateParameter(command, $"ended{n}", rule.Ended(now)));
            command.Parameters.Add(count.CreateParameter(command, $"limit{n}", rule.Limit));
        }

        command.CommandText = sql.ToString();
        var taken = new bool[rules.Count];
        await using var results = await command.ExecuteReaderAsync(cancellationToken);
        foreach (var i in order)
        {
            // A statement returns its row only when it counted the use.
            taken[i] = await results.ReadAsync(cancellationToken);
            await results.NextResultAsync(cancellationToken);
        }

        return taken;
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
