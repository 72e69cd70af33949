using System.Diagnostics;
using System.Globalization;
using System.Text;
using CmpWaldurAdapter.Benchmarks;

// cmp-adapter credit ledger benchmark: charges per second on PostgreSQL, with the exactness
// invariant checked before and after. Usage (scripts/bench.sh runs it):
//   CmpWaldurAdapter.Benchmarks --server "Host=…;Username=…" [--charges 30000] [--workers 16]
//       [--customers 1,64] [--label NAME] [--synchronous-commit on|off] [--record docs/benchmarks.md]
//   CmpWaldurAdapter.Benchmarks chat [--rate 500] [--paced-requests 10000] [--requests 20000] [--workers 32] [--subscriptions 16] [--database Postgres|Sqlite]
//       [--record docs/benchmarks.md]   (the chat gateway; Postgres is CMP_TEST_POSTGRES's server)
//   CmpWaldurAdapter.Benchmarks upload [--uploads 8] [--upload-mb 64] [--rounds 2] [--small 400] [--small-kb 100] [--workers 8]
//       [--subscriptions 4] [--limit-mb N] [--record docs/benchmarks.md]   (knowledge uploads through the adapter; CMP_TEST_POSTGRES's server)
if (args.Length > 0 && args[0] == "chat")
{
    return await ChatGatewayBench.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "upload")
{
    // Knowledge uploads: the adapter's memory while large files stream through it (see UploadBench).
    return await UploadBench.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == "proxy-floor")
{
    // The chat benchmark's yardstick, started by it in a process of its own (see ProxyFloor).
    return await ProxyFloor.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] is "orders" or "usage")
{
    // End-to-end pipelines: orders over STOMP, usage reporting (see PipelineBench).
    return await PipelineBench.RunAsync(args);
}

var options = BenchOptions.Parse(args);
var results = new List<string>();
var failures = new List<string>();

await using (var bench = await LedgerBench.CreateAsync(options))
{
    Console.WriteLine($"PostgreSQL: {bench.ServerVersion}; synchronous_commit={options.SynchronousCommit}; pool {options.Workers} connections");

    var exact = await bench.ExactnessAsync();
    Console.WriteLine(exact.Summary);
    results.Add(exact.Markdown);
    failures.AddRange(exact.Failures);

    foreach (var customers in options.Customers)
    {
        var run = await bench.ThroughputAsync(customers);
        Console.WriteLine(run.Summary);
        results.Add(run.Markdown);
        failures.AddRange(run.Failures);
    }

    if (options.Record is { } file)
    {
        await File.AppendAllTextAsync(file, Report(options, bench.ServerVersion, results, failures));
        Console.WriteLine($"Recorded in {file}");
    }
}

foreach (var failure in failures)
{
    Console.Error.WriteLine("INVARIANT BROKEN: " + failure);
}

return failures.Count == 0 ? 0 : 1;

static string Report(BenchOptions options, string serverVersion, List<string> rows, List<string> failures)
{
    var text = new StringBuilder();
    text.AppendLine(CultureInfo.InvariantCulture, $"\n## {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC — {options.Label}\n");
    text.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Describe()}");
    text.AppendLine(CultureInfo.InvariantCulture, $"- PostgreSQL: {serverVersion}; `synchronous_commit={options.SynchronousCommit}`; .NET {Environment.Version}");
    text.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{Environment.GetEnvironmentVariable("BENCH_COMMAND") ?? "CmpWaldurAdapter.Benchmarks " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1))}`");
    text.AppendLine(CultureInfo.InvariantCulture, $"- Workers (concurrent charges, pooled connections): {options.Workers}\n");
    text.AppendLine("| Run | Charges | Seconds | Charges/s | p50 ms | p99 ms | Exact |");
    text.AppendLine("|---|---:|---:|---:|---:|---:|---|");
    foreach (var row in rows)
    {
        text.AppendLine(row);
    }

    text.AppendLine();
    text.AppendLine(failures.Count == 0 ? "Every invariant held." : "INVARIANTS BROKEN: " + string.Join("; ", failures));
    return text.ToString();
}

namespace CmpWaldurAdapter.Benchmarks
{
    internal sealed record BenchOptions(string Server, int Charges, int Workers, IReadOnlyList<int> Customers, string Label, string SynchronousCommit, string? Record)
    {
        public static BenchOptions Parse(string[] args)
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i + 1 < args.Length; i += 2)
            {
                values[args[i]] = args[i + 1];
            }

            string Get(string name, string fallback) => values.TryGetValue(name, out var value) ? value : fallback;
            return new BenchOptions(
                values.TryGetValue("--server", out var server) ? server : throw new ArgumentException("--server \"Host=…;Username=…\" is required."),
                int.Parse(Get("--charges", "30000"), CultureInfo.InvariantCulture),
                int.Parse(Get("--workers", "16"), CultureInfo.InvariantCulture),
                Get("--customers", "1,64").Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToList(),
                Get("--label", "ledger"),
                Get("--synchronous-commit", "on"),
                values.GetValueOrDefault("--record"));
        }
    }

    internal static class Machine
    {
        public static string Describe()
        {
            var cpu = File.Exists("/proc/cpuinfo")
                ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                : null;
            var memory = File.Exists("/proc/meminfo")
                ? File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
                : null;
            // The load average says whether other work shared the machine during the run.
            var load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
            return $"{Environment.ProcessorCount} cores ({cpu ?? "unknown CPU"}), {memory ?? "unknown memory"}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, host {Environment.MachineName}, load average {load} at the end";
        }
    }

    internal sealed record RunResult(string Summary, string Markdown, IReadOnlyList<string> Failures);

    internal static class Stats
    {
        public static (double P50, double P99) Percentiles(List<long> ticks)
        {
            if (ticks.Count == 0)
            {
                return (0, 0);
            }

            ticks.Sort();
            double Ms(double q) => ticks[Math.Min(ticks.Count - 1, (int)(q * ticks.Count))] * 1000.0 / Stopwatch.Frequency;
            return (Ms(0.50), Ms(0.99));
        }
    }
}
