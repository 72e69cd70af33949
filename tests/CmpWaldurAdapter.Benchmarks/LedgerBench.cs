using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>Drives the real <see cref="CreditLedger"/> (as the adapter composes it) against a fresh PostgreSQL database.</summary>
internal sealed class LedgerBench : IAsyncDisposable
{
    private readonly BenchOptions _options;
    private readonly IHost _host;
    private readonly string _database;

    private LedgerBench(BenchOptions options, IHost host, string database, string serverVersion)
    {
        _options = options;
        _host = host;
        _database = database;
        ServerVersion = serverVersion;
    }

    public string ServerVersion { get; }

    private CreditLedger Ledger => _host.Services.GetRequiredService<CreditLedger>();

    public static async Task<LedgerBench> CreateAsync(BenchOptions options)
    {
        var database = "cmp_bench_" + Guid.NewGuid().ToString("N")[..12];
        string version;
        await using (var admin = new NpgsqlConnection(options.Server))
        {
            await admin.OpenAsync();
            await using (var create = new NpgsqlCommand($"CREATE DATABASE {database}", admin))
            {
                await create.ExecuteNonQueryAsync();
            }

            await using (var alter = new NpgsqlCommand($"ALTER DATABASE {database} SET synchronous_commit = {(options.SynchronousCommit == "off" ? "off" : "on")}", admin))
            {
                await alter.ExecuteNonQueryAsync();
            }

            await using var show = new NpgsqlCommand(
                "SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') || ', shared_buffers=' || current_setting('shared_buffers') || ', max_connections=' || current_setting('max_connections')", admin);
            version = (string)(await show.ExecuteScalarAsync())!;
        }

        var connection = new NpgsqlConnectionStringBuilder(options.Server) { Database = database, MaxPoolSize = Math.Max(options.Workers, 8) + 8 }.ConnectionString;
        var host = AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Database:Provider"] = "Postgres",
            ["Database:ConnectionString"] = connection,
            // Ledger funding never calls Waldur; the client only needs to be configurable.
            ["Waldur:BaseUrl"] = "http://127.0.0.1:9/",
            ["Waldur:Token"] = "benchmark",
            ["DataProtection:KeyEncryptionKey"] = CmpWaldurAdapter.Testing.Hosting.TestDatabase.KeyEncryptionKey,
            ["Serilog:MinimumLevel:Default"] = "Warning",
            // EF logs its probe of the not-yet-created migrations table as an error; it is not one.
            ["Serilog:MinimumLevel:Override:Microsoft.EntityFrameworkCore"] = "Fatal",
        }));
        await host.Services.MigrateAsync(CancellationToken.None);
        return new LedgerBench(options, host, database, version);
    }

    /// <summary>2,000 concurrent 2-credit charges against 1,000 credits, then the same request ids again.</summary>
    public async Task<RunResult> ExactnessAsync()
    {
        var subscription = (await SeedAsync(1)).Single();
        await Ledger.GrantAsync(subscription.CustomerId, 1000, "benchmark exactness");
        var requests = Enumerable.Range(0, 2000).Select(i => "exact-" + i.ToString(CultureInfo.InvariantCulture)).ToList();

        var watch = Stopwatch.StartNew();
        var first = await Task.WhenAll(requests.Select(r => Task.Run(() => Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, r))));
        watch.Stop();
        var replay = await Task.WhenAll(requests.Select(r => Task.Run(() => Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, r))));
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        var (entries, lowest) = await TrailAsync(subscription.CustomerId);

        var failures = new List<string>();
        Check(failures, first.Count(r => r.Status == ChargeStatus.Charged) == 500, "exactly 500 of 2,000 charges succeed");
        Check(failures, first.Count(r => r.Refusal == CreditRefusal.InsufficientCredits) == 1500, "1,500 are refused as insufficient");
        Check(failures, replay.Count(r => r.Status == ChargeStatus.Replayed) == 500 && !replay.Any(r => r.Status == ChargeStatus.Charged), "replays charge nothing");
        Check(failures, balance is { Balance: 0, Reserved: 0 }, "the final balance is exactly 0");
        Check(failures, entries == 500 && lowest >= 0, "500 ledger charges and no balance below 0");

        var seconds = watch.Elapsed.TotalSeconds;
        return new RunResult(
            $"exactness: 2000 concurrent charges in {seconds:0.000} s; 500 charged, 1500 refused, replays changed nothing; final balance {balance.Balance}",
            $"| exactness (2,000 × 2 credits vs 1,000) | 2000 | {seconds:0.000} | {2000 / seconds:0} | - | - | {(failures.Count == 0 ? "yes" : "NO")} |",
            failures);
    }

    /// <summary>Charges as fast as <see cref="BenchOptions.Workers"/> concurrent callers can, spread over <paramref name="customers"/> organizations.</summary>
    public async Task<RunResult> ThroughputAsync(int customers)
    {
        var subscriptions = await SeedAsync(customers);
        // Charges go round-robin per run: the warm-up and the run each give an organization at most ceil(n / customers).
        var perCustomer = ((long)Math.Ceiling(2_000.0 / customers) + (long)Math.Ceiling((double)_options.Charges / customers)) * 2;
        foreach (var subscription in subscriptions)
        {
            await Ledger.GrantAsync(subscription.CustomerId, perCustomer, "benchmark throughput");
        }

        // Warm-up: JIT, pooled connections, prepared statements.
        await RunAsync(subscriptions, 2_000, "warm", []);

        var latencies = new ConcurrentBag<List<long>>();
        var watch = Stopwatch.StartNew();
        var refused = await RunAsync(subscriptions, _options.Charges, "run", latencies);
        watch.Stop();

        var failures = new List<string>();
        long charged = 0;
        foreach (var subscription in subscriptions)
        {
            var balance = await Ledger.BalanceAsync(subscription.CustomerId);
            var (entries, lowest) = await TrailAsync(subscription.CustomerId);
            charged += entries;
            Check(failures, balance.Balance == perCustomer - (entries * 2) && balance.Reserved == 0 && lowest >= 0, $"organization {subscription.CustomerId}: balance = grant − charges, never below 0");
        }

        Check(failures, refused == 0, "no charge is refused while credits remain");
        Check(failures, charged == _options.Charges + 2_000, "every charge is in the ledger exactly once");
        var seconds = watch.Elapsed.TotalSeconds;
        var (p50, p99) = Stats.Percentiles(latencies.SelectMany(l => l).ToList());
        var rate = _options.Charges / seconds;
        var name = customers == 1 ? "one organization (one hot account row)" : $"{customers} organizations";
        return new RunResult(
            $"throughput, {name}: {_options.Charges} charges in {seconds:0.000} s = {rate:0} charges/s (p50 {p50:0.00} ms, p99 {p99:0.00} ms){(failures.Count == 0 ? string.Empty : " INVARIANT BROKEN")}",
            $"| throughput, {name} | {_options.Charges} | {seconds:0.000} | **{rate:0}** | {p50:0.00} | {p99:0.00} | {(failures.Count == 0 ? "yes" : "NO")} |",
            failures);
    }

    private async Task<int> RunAsync(IReadOnlyList<Subscription> subscriptions, int total, string prefix, ConcurrentBag<List<long>> latencies)
    {
        var next = -1;
        var refused = 0;
        var batch = Guid.NewGuid().ToString("N")[..8];
        await Task.WhenAll(Enumerable.Range(0, _options.Workers).Select(_ => Task.Run(async () =>
        {
            var mine = new List<long>();
            int i;
            while ((i = Interlocked.Increment(ref next)) < total)
            {
                var subscription = subscriptions[i % subscriptions.Count];
                var started = Stopwatch.GetTimestamp();
                var result = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, $"{prefix}-{batch}-{i}");
                mine.Add(Stopwatch.GetTimestamp() - started);
                if (result.Status != ChargeStatus.Charged)
                {
                    Interlocked.Increment(ref refused);
                }
            }

            latencies.Add(mine);
        })));
        return refused;
    }

    private async Task<List<Subscription>> SeedAsync(int count)
    {
        var now = DateTimeOffset.UtcNow;
        await using var db = await _host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        var subscriptions = new List<Subscription>();
        for (var i = 0; i < count; i++)
        {
            var customer = new Customer { Id = Guid.NewGuid(), Name = "bench", CreatedAt = now, UpdatedAt = now };
            var workspace = new Workspace { Id = Guid.NewGuid(), CustomerId = customer.Id, Name = "bench", CreatedAt = now, UpdatedAt = now };
            var subscription = new Subscription
            {
                Id = Guid.NewGuid(), ResourceUuid = Guid.NewGuid(), OfferingUuid = Guid.NewGuid(), CustomerId = customer.Id, WorkspaceId = workspace.Id,
                Name = "bench", State = SubscriptionState.Active, CreatedAt = now, UpdatedAt = now,
            };
            db.AddRange(customer, workspace, subscription);
            subscriptions.Add(subscription);
        }

        await db.SaveChangesAsync();
        return subscriptions;
    }

    /// <summary>How many charges the organization has, and the lowest balance any ledger entry left it with.</summary>
    private async Task<(long Entries, long Lowest)> TrailAsync(Guid customer)
    {
        await using var db = await _host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        var entries = await db.LedgerEntries.LongCountAsync(e => e.CustomerId == customer && e.Kind == LedgerEntryKind.Charge);
        var lowest = await db.LedgerEntries.Where(e => e.CustomerId == customer).MinAsync(e => (long?)e.BalanceAfter) ?? 0;
        return (entries, lowest);
    }

    private static void Check(List<string> failures, bool holds, string invariant)
    {
        if (!holds)
        {
            failures.Add(invariant);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_host is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        else
        {
            _host.Dispose();
        }

        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(_options.Server);
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_database} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }
}
