using System.Net;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Faults;

/// <summary>PostgreSQL restarted under a running adapter (on a cluster of the test's own): nothing lost, nothing done twice.</summary>
public sealed class DatabaseRestartTests : IAsyncLifetime
{
    private ThrowawayPostgres _postgres = null!;
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _postgres = await ThrowawayPostgres.StartAsync();
        _bed = await OrderTestBed.CreateAsync();
        _bed.Settings["Database:Provider"] = "Postgres";
        _bed.Settings["Database:ConnectionString"] = _postgres.ConnectionString;
        _bed.Settings["Orders:PollInterval"] = "00:00:01"; // polling mode: orders placed during the outage are found after it
        // The default five-minute lease: a release the outage swallowed must not make an order wait it out.
        _bed.Settings["Orders:LeaseDuration"] = "00:05:00";
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task Orders_in_flight_and_placed_during_a_database_restart_are_all_done_once()
    {
        var server = await _bed.StartServerAsync();
        using var client = server.CreateClient();
        var inbox = server.Services.GetRequiredService<OrderInbox>();
        var before = Enumerable.Range(0, 6).Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes($"Before {i}"))).ToList();
        // Orders are in the middle of a step, holding their leases, when the database goes away: the step
        // ends during the outage, so neither its progress nor the lease release reaches the database.
        var outage = new TaskCompletionSource();
        _bed.Provisioner.HoldUntil(ScriptedProvisioner.CreateSteps[1], outage.Task);
        foreach (var order in before)
        {
            await inbox.EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        }

        // The worker takes a batch of the due orders; those of the batch are all in the held step shortly after the first.
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[1]) > 0, TimeSpan.FromSeconds(30), "orders are in flight");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await _postgres.StopAsync();
        outage.SetResult();
        var during = Enumerable.Range(0, 4).Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes($"During {i}"))).ToList();
        await Eventually.TrueAsync(async () => (await client.GetAsync("/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(20), "readiness reports the database");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode); // alive: no restart loop
        await Task.Delay(TimeSpan.FromSeconds(2)); // workers and polls fail for a while

        await _postgres.StartAgainAsync();

        var all = before.Concat(during).ToList();
        await Eventually.TrueAsync(() => all.All(o => _bed.Waldur.OrderState(o) == "done"), TimeSpan.FromSeconds(90), "every order is done after the database is back");
        Assert.All(all, o => Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{o}/set_state_done/")));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        // One subscription per resource (a step cut off by the outage may run again: steps look before they create).
        var resources = await _bed.QueryAsync(db => db.Subscriptions.Select(s => s.ResourceUuid).ToListAsync());
        Assert.Equal(all.Select(_bed.Waldur.ResourceOf).Order(), resources.Order());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
    }
}
