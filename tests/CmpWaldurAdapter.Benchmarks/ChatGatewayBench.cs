using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>
/// The chat gateway's overhead: the same load (plain completions) straight to the Langflow emulator and
/// through the adapter (authentication, rate limit, hold, retrieval, run, settle), in one run; the adapter
/// serves from its own process so its peak memory is its own. Two loads, because one cannot show both:
/// <list type="bullet">
/// <item>added latency at a steady rate (open loop: requests are sent on a schedule whether or not earlier ones
/// have returned, so a stall is not hidden). Overhead is the difference
/// of the two paths' percentiles.</item>
/// <item>throughput at saturation (closed loop: N clients each sending the next request as soon as the last
/// returns). Here latency is mostly queueing: by Little's law N clients at X requests/s wait N/X on average,
/// e.g. 8 clients at 2,000/s are 4 ms, whatever the gateway adds.</item>
/// </list>
/// </summary>
internal static class ChatGatewayBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i]] = args[i + 1];
        }

        string Get(string name, string fallback) => values.TryGetValue(name, out var value) ? value : fallback;
        var requests = int.Parse(Get("--requests", "20000"), CultureInfo.InvariantCulture);
        var workers = int.Parse(Get("--workers", "32"), CultureInfo.InvariantCulture);
        var rate = int.Parse(Get("--rate", "500"), CultureInfo.InvariantCulture);
        var paced = int.Parse(Get("--paced-requests", (rate * 20).ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        var subscriptions = int.Parse(Get("--subscriptions", "16"), CultureInfo.InvariantCulture);
        var provider = Enum.Parse<DatabaseProvider>(Get("--database", "Postgres"), ignoreCase: true);
        var record = values.GetValueOrDefault("--record");

        await using var bed = await EmulatedChatBed.StartAsync(provider, settings =>
        {
            settings["Chat:RequestsPerMinute"] = "1000000";
        });
        var subscribers = new List<(string FlowId, string Session, string Key, string TenantKey)>();
        var tenants = new List<ProxyFloor.Tenant>();
        for (var i = 0; i < subscriptions; i++)
        {
            var (subscription, key, tenantKey) = await bed.SubscribeAsync(credits: 1_000_000_000);
            subscribers.Add((subscription.LangflowFlowId!, $"{subscription.ResourceUuid:N}:bench", key, tenantKey));
            tenants.Add(new ProxyFloor.Tenant(key, subscription.LangflowFlowId!, tenantKey, subscription.RagflowDatasetId!, $"{subscription.ResourceUuid:N}:bench"));
        }

        await using var floor = await ProxyFloor.StartAsync(bed, tenants);

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = workers * 2, PooledConnectionLifetime = TimeSpan.FromMinutes(10) });
        HttpRequestMessage Direct(int i)
        {
            var (flow, session, _, tenantKey) = subscribers[i % subscribers.Count];
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(bed.Langflow.Url, $"api/v1/run/{flow}?stream=false"))
            {
                Content = new StringContent("{\"input_value\":\"Where is my parcel?\",\"input_type\":\"chat\",\"output_type\":\"chat\",\"session_id\":\"" + session + "\",\"tweaks\":{\"Prompt-cmp01\":{\"agent_name\":\"Ada\",\"tone\":\"friendly\",\"language\":\"en\",\"context\":\"\"}}}", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("x-api-key", tenantKey);
            return request;
        }

        // The same message through the adapter, or through the floor (the same two upstream calls and nothing else).
        HttpRequestMessage Completion(Uri server, int i)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server, "v1/chat/completions"))
            {
                Content = new StringContent("""{"model":"customer-support-agent","messages":[{"role":"user","content":"Where is my parcel?"}],"user":"bench"}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", subscribers[i % subscribers.Count].Key);
            return request;
        }

        HttpRequestMessage Adapter(int i) => Completion(bed.Url, i);
        HttpRequestMessage Floor(int i) => Completion(floor.Url, i);

        Console.WriteLine($"chat gateway: {paced} requests per path at {rate}/s, then {requests} per path with {workers} clients; {subscriptions} subscriptions, {provider}");
        await LoadAsync(http, Direct, Math.Max(500, requests / 10), workers);
        await LoadAsync(http, Adapter, Math.Max(500, requests / 10), workers);
        await LoadAsync(http, Floor, Math.Max(500, requests / 10), workers);

        var directPaced = await PacedAsync(http, Direct, paced, rate);
        var floorPaced = await PacedAsync(http, Floor, paced, rate);
        var adapterPaced = await PacedAsync(http, Adapter, paced, rate);
        await floor.DisposeAsync(); // idle from here on: the throughput loads have the two cores to themselves
        var direct = await LoadAsync(http, Direct, requests, workers);
        var adapter = await LoadAsync(http, Adapter, requests, workers);
        var peak = bed.AdapterPeakResidentBytes;

        var failures = new List<string>();
        var errors = directPaced.Errors + floorPaced.Errors + adapterPaced.Errors + direct.Errors + adapter.Errors;
        if (errors > 0)
        {
            failures.Add($"{errors} requests failed");
        }

        var p50 = adapterPaced.P50 - directPaced.P50;
        var p99 = adapterPaced.P99 - directPaced.P99;
        var targets = new List<string>
        {
            Target($"p50 overhead ≤ 1 ms (at {rate}/s)", p50 <= 1),
            Target($"p99 overhead ≤ 5 ms (at {rate}/s)", p99 <= 5),
            Target($"≥ 2,000 requests/s through the adapter ({workers} clients)", adapter.PerSecond >= 2000),
            Target("adapter peak memory ≤ 250 MB", peak <= 250 * 1024 * 1024),
        };
        var rows = new[]
        {
            $"| straight to the Langflow emulator | {rate}/s | {paced} | {directPaced.Seconds:F1} | {directPaced.PerSecond:F0} | {directPaced.P50:F2} | {directPaced.P99:F2} |",
            $"| through the adapter | {rate}/s | {paced} | {adapterPaced.Seconds:F1} | {adapterPaced.PerSecond:F0} | {adapterPaced.P50:F2} | {adapterPaced.P99:F2} |",
            $"| **overhead at {rate}/s** | | | | | **{p50:F2}** | **{p99:F2}** |",
            $"| through the floor: the same two upstream calls, nothing else | {rate}/s | {paced} | {floorPaced.Seconds:F1} | {floorPaced.PerSecond:F0} | {floorPaced.P50:F2} | {floorPaced.P99:F2} |",
            $"| the floor's overhead at {rate}/s (this machine's share) | | | | | {floorPaced.P50 - directPaced.P50:F2} | {floorPaced.P99 - directPaced.P99:F2} |",
            $"| straight to the Langflow emulator | {workers} clients | {requests} | {direct.Seconds:F1} | {direct.PerSecond:F0} | {direct.P50:F2} | {direct.P99:F2} |",
            $"| through the adapter | {workers} clients | {requests} | {adapter.Seconds:F1} | **{adapter.PerSecond:F0}** | {adapter.P50:F2} | {adapter.P99:F2} |",
            $"| overhead at saturation (mostly queueing) | | | | | {adapter.P50 - direct.P50:F2} | {adapter.P99 - direct.P99:F2} |",
        };
        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }

        Console.WriteLine($"adapter process peak resident set {peak / 1024 / 1024} MB; " + string.Join("; ", targets));
        if (record is not null)
        {
            await BenchRecord.AppendAsync(record, $"chat gateway ({provider})",
            [
                $"Load: plain (non-streamed) completions, {subscriptions} subscriptions (own keys and organizations), database {provider}; .NET {Environment.Version}. Latency: {paced} requests per path sent at a steady {rate}/s (open loop: never waiting for earlier answers). Throughput: {requests} requests per path from {workers} clients sending back to back (closed loop).",
                "`cmp-adapter serve` runs as its own process; the load generator and the product's emulators (CmpWaldurAdapter.Emulators) run in the benchmark's process; every subscriber was ordered in the Waldur emulator and provisioned by the adapter on the Langflow and RAGFlow emulators. The straight path runs the tenant's own flow with its own Langflow key; the adapter path adds authentication, rate limit, credit hold, retrieval from the tenant's dataset, the same run, and settlement. The floor (ProxyFloor, its own process) makes the same retrieval and run per message with nothing else: no ledger, checks, resilience, metrics or logs; the gap between it and the adapter is the adapter's own.",
                $"Adapter memory: peak resident set (VmHWM) of the `cmp-adapter serve` process over its whole life (start, provisioning, warm-up and both loads): {peak / 1024 / 1024} MB.",
            ],
            ["| Path | Load | Requests | Seconds | Requests/s | p50 ms | p99 ms |", "|---|---|---:|---:|---:|---:|---:|", .. rows],
            targets, failures);
        }

        foreach (var failure in failures)
        {
            Console.Error.WriteLine("FAILED: " + failure);
        }

        return failures.Count == 0 ? 0 : 1;
    }

    private static string Target(string name, bool met) => $"{name}: {(met ? "met" : "NOT met")}";

    private sealed record Load(double Seconds, double PerSecond, double P50, double P99, int Errors);

    /// <summary>
    /// Open loop: request i is due at start + i/rate and is sent then (or as soon as the sender's timer wakes),
    /// never waiting for earlier answers, so a stalled server cannot slow the sender down and hide its stall.
    /// Latency counts from the send, not from the due time, so the sender's timer slack is not counted as the server's.
    /// </summary>
    private static async Task<Load> PacedAsync(HttpClient http, Func<int, HttpRequestMessage> request, int count, int rate)
    {
        var latencies = new long[count];
        var errors = 0;
        var sent = new List<Task>(count);
        var start = Stopwatch.GetTimestamp();
        double interval = Stopwatch.Frequency / (double)rate;
        for (var i = 0; i < count; i++)
        {
            var due = start + (long)(i * interval);
            var wait = due - Stopwatch.GetTimestamp();
            if (wait > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency));
            }

            var index = i;
            sent.Add(Task.Run(async () =>
            {
                (latencies[index], var ok) = await SendAsync(http, request(index));
                if (!ok)
                {
                    Interlocked.Increment(ref errors);
                }
            }));
        }

        await Task.WhenAll(sent);
        var seconds = (Stopwatch.GetTimestamp() - start) / (double)Stopwatch.Frequency;
        var (p50, p99) = Stats.Percentiles([.. latencies]);
        return new Load(seconds, count / seconds, p50, p99, errors);
    }

    private static async Task<Load> LoadAsync(HttpClient http, Func<int, HttpRequestMessage> request, int count, int workers)
    {
        var next = -1;
        var errors = 0;
        var latencies = new List<long>[workers];
        var total = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var mine = latencies[w] = new List<long>(count / workers + 1);
            for (var i = Interlocked.Increment(ref next); i < count; i = Interlocked.Increment(ref next))
            {
                var (ticks, ok) = await SendAsync(http, request(i));
                mine.Add(ticks);
                if (!ok)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })));
        total.Stop();
        var all = latencies.SelectMany(l => l).ToList();
        var (p50, p99) = Stats.Percentiles(all);
        return new Load(total.Elapsed.TotalSeconds, count / total.Elapsed.TotalSeconds, p50, p99, errors);
    }

    /// <summary>One request, timed from its send to its last byte.</summary>
    private static async Task<(long Ticks, bool Ok)> SendAsync(HttpClient http, HttpRequestMessage message)
    {
        using (message)
        {
            var started = Stopwatch.GetTimestamp();
            using var response = await http.SendAsync(message);
            await response.Content.ReadAsByteArrayAsync();
            return (Stopwatch.GetTimestamp() - started, response.IsSuccessStatusCode);
        }
    }
}
