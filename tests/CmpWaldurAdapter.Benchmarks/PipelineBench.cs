using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>
/// End-to-end benchmarks of the adapter's pipelines against the real PostgreSQL and RabbitMQ that
/// scripts/services.sh starts (CMP_TEST_POSTGRES, CMP_TEST_RABBITMQ_*), with the Waldur emulator on Kestrel (the
/// same behaviour the sandbox runs and the tests' WireMock fake serves):
/// <list type="bullet">
/// <item><c>orders</c>: N Create orders announced over STOMP → all done; duplicates are counted from the
/// emulator's set_state_done calls per order.</item>
/// <item><c>usage</c>: usage reporting for N resources with charges; a second run must post nothing; after
/// charging M of them again, a third run must post exactly those.</item>
/// </list>
/// </summary>
internal static class PipelineBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var scenario = args[0];
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i + 1 < args.Length; i += 2)
        {
            values[args[i]] = args[i + 1];
        }

        int Get(string name, int fallback) => values.TryGetValue(name, out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;
        var record = values.GetValueOrDefault("--record");
        var (title, rows, failures) = scenario switch
        {
            "orders" => await OrdersAsync(Get("--orders", 500), Get("--target-seconds", 30)),
            "usage" => await UsageAsync(Get("--resources", 10_000), Get("--changed", 100), Get("--target-seconds", 30)),
            _ => throw new ArgumentException($"unknown scenario {scenario}: orders or usage"),
        };

        foreach (var row in rows)
        {
            Console.WriteLine(row);
        }

        foreach (var failure in failures)
        {
            Console.Error.WriteLine("TARGET MISSED OR INVARIANT BROKEN: " + failure);
        }

        if (record is not null)
        {
            var text = new StringBuilder();
            text.AppendLine(CultureInfo.InvariantCulture, $"\n## {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC — {title}\n");
            text.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Describe()}");
            text.AppendLine(CultureInfo.InvariantCulture, $"- PostgreSQL and RabbitMQ from scripts/services.sh (fsync off); Waldur is the in-process emulator (Kestrel); .NET {Environment.Version}");
            text.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{Environment.GetEnvironmentVariable("BENCH_COMMAND") ?? "CmpWaldurAdapter.Benchmarks " + string.Join(' ', args)}`\n");
            text.AppendLine("| Run | Items | Seconds | Per second | Result | Target met |");
            text.AppendLine("|---|---:|---:|---:|---|---|");
            foreach (var row in rows)
            {
                text.AppendLine(row);
            }

            text.AppendLine();
            text.AppendLine(failures.Count == 0 ? "Every target and invariant held." : "MISSED: " + string.Join("; ", failures));
            await File.AppendAllTextAsync(record, text.ToString());
            Console.WriteLine($"Recorded in {record}");
        }

        return failures.Count == 0 ? 0 : 1;
    }

    private static async Task<(string, List<string>, List<string>)> OrdersAsync(int count, int targetSeconds)
    {
        var rows = new List<string>();
        var failures = new List<string>();
        await using var waldur = new WaldurEmulator();
        await waldur.StartAsync();
        using var broker = new RabbitMqBroker();
        var queues = new ConcurrentDictionary<string, string>();
        waldur.OnQueueCreated = (vhost, queue) =>
        {
            broker.ProvisionQueueAsync(vhost, queue.Split('_')[1], WaldurEmulator.Token, queue).GetAwaiter().GetResult();
            queues[queue.EndsWith("_order", StringComparison.Ordinal) ? "order" : "resource"] = queue;
        };
        var form = JsonNode.Parse("""{"order": ["agent_name"], "options": {"agent_name": {"type": "string", "label": "Agent name", "required": true}}}""")!.AsObject();
        var offering = waldur.AddOffering("Benchmark Agent", form, (JsonObject)form.DeepClone());
        await using var database = await TestDatabase.CreateMigratedAsync(DatabaseProvider.Postgres);
        var settings = AdapterTestHost.Settings(waldur, database, offering);
        settings["Events:Enabled"] = "true";
        settings["Events:WebSocketUrl"] = broker.WebSocketUrl.ToString();
        settings["Orders:StuckCheckInterval"] = "01:00:00";
        settings["Waldur:AttemptTimeout"] = "00:00:30";
        await using var server = await AdapterTestHost.StartServerAsync(settings, new CapturedLogs(),
            services => services.Replace(ServiceDescriptor.Singleton<ITenantProvisioner>(new ScriptedProvisioner())));
        var status = server.Services.GetRequiredService<EventChannelStatus>();
        await Eventually.TrueAsync(() => status.ConnectedQueues == 2, TimeSpan.FromSeconds(30), "the event channel is subscribed");

        var orders = Enumerable.Range(0, count).Select(i => waldur.PlaceCreateOrder(offering, new JsonObject { ["name"] = $"agent {i}", ["agent_name"] = $"Agent {i}" })).ToList();
        var vhost = waldur.UserUuid.ToString("N");
        var clock = Stopwatch.StartNew();
        foreach (var order in orders)
        {
            await broker.PublishAsync(vhost, queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-provider" });
        }

        var published = clock.Elapsed.TotalSeconds;
        var deadline = TimeSpan.FromSeconds(Math.Max(120, targetSeconds * 4));
        while (clock.Elapsed < deadline && !orders.All(o => waldur.OrderState(o) == "done"))
        {
            await Task.Delay(100);
        }

        var seconds = clock.Elapsed.TotalSeconds;
        var done = orders.Count(o => waldur.OrderState(o) == "done");
        var duplicates = orders.Sum(o => Math.Max(0, waldur.RequestCount("POST", $"/api/marketplace-orders/{o}/set_state_done/") - 1));
        var met = done == count && duplicates == 0 && seconds <= targetSeconds;
        rows.Add(string.Create(CultureInfo.InvariantCulture,
            $"| {count} Create orders announced over STOMP → done (published in {published:F1} s; Orders:Concurrency default) | {count} | {seconds:F1} | {done / seconds:F1} | {done} done, {duplicates} duplicate set_state_done | {(met ? "yes" : "**no**")} (≤ {targetSeconds} s, 0 duplicates) |"));
        if (done != count)
        {
            failures.Add($"{count - done} of {count} orders not done after {seconds:F0} s");
        }

        if (duplicates > 0)
        {
            failures.Add($"{duplicates} duplicate set_state_done calls");
        }

        if (seconds > targetSeconds)
        {
            failures.Add($"{seconds:F1} s > {targetSeconds} s");
        }

        return ($"{count} orders over STOMP", rows, failures);
    }

    private static async Task<(string, List<string>, List<string>)> UsageAsync(int resources, int changed, int targetSeconds)
    {
        var rows = new List<string>();
        var failures = new List<string>();
        await using var waldur = new WaldurEmulator();
        await waldur.StartAsync();
        using var catalogue = new TestCatalogue();
        await using var database = await TestDatabase.CreateMigratedAsync(DatabaseProvider.Postgres);
        var offering = waldur.AddOffering("Studio Agent");
        var settings = AdapterTestHost.Settings(waldur, database, offering);
        settings["Offerings:0:Slug"] = TestCatalogue.Slug;
        settings["Catalogue:Directory"] = catalogue.Directory;
        using var host = await AdapterTestHost.StartServicesAsync(settings, new CapturedLogs());
        var ledger = host.Services.GetRequiredService<CreditLedger>();
        var subscriptions = await SeedAsync(host.Services, ledger, waldur, offering, resources);
        var reporter = host.Services.GetRequiredService<UsageReporter>();

        async Task<(double Seconds, int Posted, int Calls)> RunAsync()
        {
            var before = waldur.RequestCount("POST", "/api/marketplace-component-usages/set_usage/");
            var clock = Stopwatch.StartNew();
            var report = await reporter.ReportAsync();
            return (clock.Elapsed.TotalSeconds, report.Posted, waldur.RequestCount("POST", "/api/marketplace-component-usages/set_usage/") - before);
        }

        void Row(string run, int items, (double Seconds, int Posted, int Calls) result, int expectedCalls, bool timed)
        {
            var met = result.Calls == expectedCalls && (!timed || result.Seconds <= targetSeconds);
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {run} | {items} | {result.Seconds:F1} | {items / result.Seconds:F0} | {result.Calls} set_usage calls (expected {expectedCalls}) | {(met ? "yes" : "**no**")}{(timed ? $" (≤ {targetSeconds} s)" : string.Empty)} |"));
            if (result.Calls != expectedCalls)
            {
                failures.Add($"{run}: {result.Calls} set_usage calls, expected {expectedCalls}");
            }

            if (timed && result.Seconds > targetSeconds)
            {
                failures.Add($"{run}: {result.Seconds:F1} s > {targetSeconds} s");
            }
        }

        Row($"first report, {resources} resources with charges", resources, await RunAsync(), resources, timed: true);
        Row("second report, nothing changed", resources, await RunAsync(), 0, timed: true);
        foreach (var subscription in subscriptions.Take(changed))
        {
            await ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 1, 1, "second-" + subscription.Id);
        }

        Row($"third report, {changed} resources charged again", resources, await RunAsync(), changed, timed: true);
        await host.StopAsync();
        return ($"usage reporting for {resources} resources", rows, failures);
    }

    /// <summary>N active subscriptions over N/100 organizations, each charged once (through the ledger).</summary>
    private static async Task<List<Subscription>> SeedAsync(IServiceProvider services, CreditLedger ledger, WaldurEmulator waldur, Guid offering, int count)
    {
        var now = DateTimeOffset.UtcNow;
        var customers = Enumerable.Range(0, Math.Max(1, count / 100)).Select(_ => Guid.NewGuid()).ToList();
        var subscriptions = new List<Subscription>();
        await using (var db = await services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync())
        {
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            db.Customers.AddRange(customers.Select(c => new Customer { Id = c, Name = "Buyer", CreatedAt = now, UpdatedAt = now }));
            for (var i = 0; i < count; i++)
            {
                var customer = customers[i % customers.Count];
                var workspace = new Workspace { Id = Guid.NewGuid(), CustomerId = customer, Name = "Project", CreatedAt = now, UpdatedAt = now };
                var subscription = new Subscription
                {
                    Id = Guid.NewGuid(), ResourceUuid = Guid.NewGuid(), OfferingUuid = offering, CustomerId = customer, WorkspaceId = workspace.Id,
                    Name = "agent", State = SubscriptionState.Active, CreatedAt = now, UpdatedAt = now,
                };
                db.Workspaces.Add(workspace);
                db.Subscriptions.Add(subscription);
                subscriptions.Add(subscription);
                waldur.KnowResource(subscription.ResourceUuid, offering);
            }

            await db.SaveChangesAsync();
        }

        foreach (var customer in customers)
        {
            await ledger.GrantAsync(customer, 1_000_000, "benchmark funding");
        }

        await Parallel.ForEachAsync(subscriptions, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (subscription, cancellationToken) =>
            await ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, "first-" + subscription.Id, cancellationToken: cancellationToken));
        return subscriptions;
    }
}
