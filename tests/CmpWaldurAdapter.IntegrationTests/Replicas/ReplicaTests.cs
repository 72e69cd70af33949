using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Events;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Replicas;

/// <summary>
/// Two adapter instances on one PostgreSQL database and one RabbitMQ queue (the real broker), as two
/// replicas of the Deployment run: every order is provisioned once, every usage report is sent once
/// (Quartz clustered), and the ledger stays exact with charges split across both.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class ReplicaTests : IAsyncLifetime
{
    private const int Orders = 24;

    private readonly RabbitMqBroker _broker = new();
    private readonly ConcurrentDictionary<string, string> _queues = new();
    private OrderTestBed _bed = null!;
    private RunningAdapter _first = null!;
    private RunningAdapter _second = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync(DatabaseProvider.Postgres);
        _broker.ServeEvents(_bed.Waldur, _bed.Settings, _queues);
        _bed.Settings["Usage:ReportInterval"] = "00:00:01";

        // One after the other, as a rolling deployment starts them: the second finds the first's channel.
        _first = await _bed.StartServerAsync();
        await Eventually.TrueAsync(() => Connected(_first) == 2, TimeSpan.FromSeconds(20), "the first replica subscribes");
        _second = await AdapterTestHost.StartServerAsync(_bed.Settings, new CapturedLogs(), _bed.UseProvisioner);
        await Eventually.TrueAsync(() => Connected(_second) == 2, TimeSpan.FromSeconds(20), "the second replica subscribes");
    }

    public async Task DisposeAsync()
    {
        await _second.DisposeAsync();
        await _bed.DisposeAsync();
        _broker.Dispose();
    }

    [Fact]
    public async Task Two_replicas_provision_each_order_once_report_usage_once_and_keep_the_ledger_exact()
    {
        Assert.Single(_queues.Values, q => q.EndsWith("_order", StringComparison.Ordinal)); // one queue, two consumers
        var vhost = _bed.Waldur.UserUuid.ToString("N");

        // Orders: each announced twice on the shared queue, so both replicas see copies of the same order.
        var organization = Guid.NewGuid();
        var orders = Enumerable.Range(0, Orders).Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes($"Agent {i}"), organization)).ToList();
        foreach (var order in orders.Concat(orders))
        {
            await _broker.PublishAsync(vhost, _queues["order"], new JsonObject { ["order_uuid"] = order.ToString(), ["order_state"] = "pending-provider" });
        }

        await Eventually.TrueAsync(() => orders.All(o => _bed.Waldur.OrderState(o) == "done"), TimeSpan.FromSeconds(60), "every order is done");
        Assert.All(orders, o => Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{o}/set_state_done/")));
        Assert.All(orders, o => Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{o}/approve_by_provider/")));
        Assert.Equal(Orders, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]));
        Assert.True(Processed(_first) > 0 && Processed(_second) > 0, $"both replicas took orders ({Processed(_first)} and {Processed(_second)})");

        // Credits: 2,000 concurrent 2-credit charges against 1,000 credits, alternating between the replicas.
        var subscriptions = await _bed.QueryAsync(db => db.Subscriptions.AsNoTracking().OrderBy(s => s.ResourceUuid).ToListAsync());
        var customer = subscriptions[0].CustomerId;
        var charged = subscriptions.Where(s => s.CustomerId == customer).Take(2).ToList();
        await Ledger(_first).GrantAsync(customer, 1000, "replica test funding");
        var results = await Task.WhenAll(Enumerable.Range(0, 2000).Select(i => Task.Run(() =>
            Ledger(i % 2 == 0 ? _first : _second).ChargeAsync(customer, charged[i % charged.Count].Id, charged[i % charged.Count].OfferingUuid, ActionClass.ChatMessage, 2, 1, $"request-{i}"))));

        Assert.Equal(500, results.Count(r => r.Status == ChargeStatus.Charged));
        Assert.All(results.Where(r => r.Status != ChargeStatus.Charged), r => Assert.Equal(CreditRefusal.InsufficientCredits, r.Refusal));
        var balance = await Ledger(_second).BalanceAsync(customer);
        Assert.Equal(0, balance.Balance);
        Assert.Equal(1000, await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.CustomerId == customer && e.Kind == LedgerEntryKind.Charge).SumAsync(e => e.Credits)));

        // Usage: the clustered job fires every second on one replica or the other. A total may be sent while
        // the charges still run (it changed since), but the same total is never sent twice, and once Waldur
        // holds the final totals nothing more is sent.
        await Eventually.TrueAsync(() => UsageInWaldur() == 1000m, TimeSpan.FromSeconds(30), "the final totals reach Waldur");
        await Task.Delay(TimeSpan.FromSeconds(1)); // the last call's log entry
        var settled = UsageSends();
        await Task.Delay(TimeSpan.FromSeconds(4)); // several more firings
        var sends = UsageSends();
        Assert.Equal(settled, sends);
        Assert.Equal(sends.Count, sends.Distinct().Count());
        // One usage per resource that was charged: under load one replica's batched charges can use up all
        // the credits before the other's first charge, so only one of the two resources may have usage.
        var withCharges = await _bed.QueryAsync(db => db.LedgerEntries
            .Where(e => e.CustomerId == customer && e.Kind == LedgerEntryKind.Charge)
            .Select(e => e.ResourceUuid)
            .Distinct()
            .CountAsync());
        Assert.InRange(withCharges, 1, charged.Count);
        Assert.Equal(withCharges, _bed.Waldur.Usages.Count);
    }

    private decimal UsageInWaldur() =>
        _bed.Waldur.Usages.Sum(u => decimal.Parse(u["usage"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Each set_usage call Waldur received, as "resource usages".</summary>
    private List<string> UsageSends() => _bed.Waldur.Requests
        .Where(r => r.Path == "/api/marketplace-component-usages/set_usage/")
        .Select(r => JsonNode.Parse(r.Body!)!)
        .Select(b => $"{b["resource"]} {b["usages"]!.ToJsonString()}")
        .ToList();

    private static int Connected(RunningAdapter adapter) => adapter.Services.GetRequiredService<EventChannelStatus>().ConnectedQueues;

    private static CreditLedger Ledger(RunningAdapter adapter) => adapter.Services.GetRequiredService<CreditLedger>();

    private static int Processed(RunningAdapter adapter) =>
        adapter.Logs.Events.Count(e => e.MessageTemplate.Text.EndsWith("is done", StringComparison.Ordinal) && e.Properties.ContainsKey("OrderUuid"));
}
