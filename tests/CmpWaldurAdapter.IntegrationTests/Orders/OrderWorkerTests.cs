using System.Net;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

/// <summary>The running server: the inbox worker, the start-up poll and the re-feed job, end to end.</summary>
public sealed class OrderWorkerTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_announced_order_is_done_within_seconds()
    {
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());

        var started = DateTime.UtcNow;
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "the order reaches done");
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5), "announcement to done takes seconds, not a poll interval");
    }

    [Fact]
    public async Task An_order_announced_while_another_hangs_is_done_without_waiting_for_it()
    {
        var server = await _bed.StartServerAsync();
        var inbox = server.Services.GetRequiredService<OrderInbox>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _bed.Provisioner.HoldOnceUntil(ScriptedProvisioner.CreateSteps[0], release.Task); // an upstream call that hangs
        var slow = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Slow"));
        await inbox.EnqueueAsync(slow, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]) == 1, TimeSpan.FromSeconds(10), "the slow order hangs in its first step");

        var next = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Next"));
        await inbox.EnqueueAsync(next, "pending-provider", "event", false, CancellationToken.None);

        try
        {
            // A free slot takes it: it does not wait for the hanging order to end (released only after this).
            await Eventually.TrueAsync(() => _bed.Waldur.OrderState(next) == "done", TimeSpan.FromSeconds(30), "the next order is done while the slow one hangs");
            Assert.NotEqual("done", _bed.Waldur.OrderState(slow));
        }
        finally
        {
            release.SetResult();
        }

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(slow) == "done", TimeSpan.FromSeconds(10), "the slow order finishes once its call returns");
    }

    [Fact]
    public async Task Once_the_host_begins_to_stop_no_new_order_or_job_starts_and_the_order_at_work_finishes()
    {
        var server = await _bed.StartServerAsync();
        var inbox = server.Services.GetRequiredService<OrderInbox>();
        var worker = server.Services.GetRequiredService<OrderInboxWorker>();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _bed.Provisioner.HoldOnceUntil(ScriptedProvisioner.CreateSteps[0], release.Task);
        var atWork = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("At work"));
        await inbox.EnqueueAsync(atWork, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]) == 1, TimeSpan.FromSeconds(10), "the order is at work");

        // SIGTERM: the web server drains first, for up to the shutdown timeout, before the workers are stopped.
        server.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
        var late = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Late"));
        await inbox.EnqueueAsync(late, "pending-provider", "event", false, CancellationToken.None);
        release.SetResult();

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(atWork) == "done", TimeSpan.FromSeconds(10), "the order at work finishes");
        await worker.ExecuteTask!.WaitAsync(TimeSpan.FromSeconds(10)); // the pump ended once its slots were free
        Assert.NotEqual("done", _bed.Waldur.OrderState(late));
        Assert.Equal(1, _bed.Provisioner.Runs(ScriptedProvisioner.CreateSteps[0]));
        Assert.True(await inbox.DueAsync(10, [], CancellationToken.None) is [var due] && due == late, "the late order stays in the inbox for another replica");
        var scheduler = await server.Services.GetRequiredService<Quartz.ISchedulerFactory>().GetScheduler();
        await Eventually.TrueAsync(() => scheduler.Status == Quartz.SchedulerStatus.Standby, TimeSpan.FromSeconds(10), "no scheduled job fires any more");
    }

    [Fact]
    public async Task Pending_orders_are_found_by_the_start_up_poll_without_any_event()
    {
        var first = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("One"));
        var second = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Two"));
        _bed.Settings["Waldur:PageSize"] = "1"; // forces paging through the order list

        var server = await _bed.StartServerAsync();

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(first) == "done" && _bed.Waldur.OrderState(second) == "done", TimeSpan.FromSeconds(15));
    }

    [Fact]
    public async Task Polling_only_mode_keeps_finding_new_orders_on_its_schedule()
    {
        _bed.Settings["Orders:PollInterval"] = "00:00:00.300";
        var server = await _bed.StartServerAsync();
        await Task.Delay(200);

        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "the poll job picks the order up");
    }

    [Fact]
    public async Task Polling_only_mode_finds_orders_that_fill_the_last_page_exactly()
    {
        // Waldur answers a page past the last with 404: the poll must stop on the full last page, not ask for the next.
        _bed.Settings["Waldur:PageSize"] = "2";
        _bed.Settings["Orders:PollInterval"] = "00:00:00.300";
        var server = await _bed.StartServerAsync();

        var first = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("One"));
        var second = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes("Two"));

        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(first) == "done" && _bed.Waldur.OrderState(second) == "done", TimeSpan.FromSeconds(15),
            "the poll job picks both orders up");
        // Oldest first, so orders placed meanwhile join the last page instead of moving the others between pages.
        Assert.All(_bed.Waldur.Requests.Where(r => r.Method == "GET" && r.Path == "/api/marketplace-orders/"),
            r => Assert.Equal("created", r.Query!["o"].Single()));
    }

    [Fact]
    public async Task Transient_failures_are_retried_with_backoff_by_the_worker_and_never_err()
    {
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Break("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503);

        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.Count("POST", ".*/approve_by_provider/") >= 9, TimeSpan.FromSeconds(10), "the worker keeps retrying");
        Assert.Equal("pending-provider", _bed.Waldur.OrderState(order));

        _bed.Waldur.Heal();
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
    }

    [Fact]
    public async Task An_order_stuck_longer_than_the_configured_age_is_fed_again()
    {
        _bed.Settings["Orders:StuckAfter"] = "00:00:01";
        _bed.Settings["Orders:StuckCheckInterval"] = "00:00:00.300";
        _bed.Settings["Orders:RetryInitial"] = "01:00:00"; // a deferred order would otherwise wait an hour
        _bed.Settings["Orders:RetryMaximum"] = "01:00:00";
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503, times: 3);

        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.Count("POST", ".*/approve_by_provider/") == 3, TimeSpan.FromSeconds(5));
        Assert.Equal("pending-provider", _bed.Waldur.OrderState(order));

        _bed.Waldur.Age(order, TimeSpan.FromMinutes(5));
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10), "the stuck-order job re-feeds it");
    }
}
