using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

/// <summary>A Terminate order reports the subscription's final usage before the order is set done.</summary>
public sealed class FinalUsageReportTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Terminating_reports_the_final_usage_then_finishes_the_order()
    {
        var resource = await SubscribeAndChargeAsync();

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        var outcome = await _bed.ProcessUntilSettledAsync(terminate);

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        var usage = Assert.Single(_bed.Waldur.Usages);
        Assert.Equal(("chat_credits", "6.00"), (usage["type"]!.GetValue<string>(), usage["usage"]!.GetValue<string>()));
        var requests = _bed.Waldur.Requests.OrderBy(r => r.DateTime).Select(r => r.Path).ToList();
        Assert.True(requests.LastIndexOf("/api/marketplace-component-usages/set_usage/") < requests.LastIndexOf($"/api/marketplace-orders/{terminate}/set_state_done/"));
        var report = _bed.Waldur.Resource(resource)["report"]!.ToJsonString();
        Assert.Contains("Final usage reported: chat_credits 6", report);
    }

    [Fact]
    public async Task When_waldur_refuses_the_final_report_the_order_waits_and_loses_nothing()
    {
        var resource = await SubscribeAndChargeAsync();
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        _bed.Waldur.Break("POST", "/api/marketplace-component-usages/set_usage/", 503);

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(terminate, CancellationToken.None));
        Assert.Equal("executing", _bed.Waldur.OrderState(terminate));

        _bed.Waldur.Heal();
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        Assert.Equal("6.00", Assert.Single(_bed.Waldur.Usages)["usage"]!.GetValue<string>());
        Assert.Equal(1, _bed.Provisioner.Runs("remove-runtime"));
    }

    [Fact]
    public async Task While_another_report_of_the_resource_holds_its_usage_lease_the_termination_waits()
    {
        var resource = await SubscribeAndChargeAsync();
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        // Another replica's usage report of the resource holds its lease.
        var leases = _bed.Services.GetRequiredService<DatabaseLeases>();
        var name = UsageReportLease.Name(resource);
        var holding = await leases.TryAcquireWaitingAsync(name, TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(holding);

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(terminate, CancellationToken.None));
        Assert.Equal("executing", _bed.Waldur.OrderState(terminate));
        Assert.Empty(_bed.Waldur.Usages);

        await leases.ReleaseAsync(name, holding);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        Assert.Equal("6.00", Assert.Single(_bed.Waldur.Usages)["usage"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_final_report_waldur_refuses_outright_does_not_hold_the_termination_back_and_is_named()
    {
        var resource = await SubscribeAndChargeAsync();
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        // Retrying the same request cannot change this answer (a past month, or a component Waldur does not know).
        _bed.Waldur.Break("POST", "/api/marketplace-component-usages/set_usage/", 400);

        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));

        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        Assert.Empty(_bed.Waldur.Usages);
        var report = _bed.Waldur.Resource(resource)["report"]!.ToJsonString();
        Assert.Contains("Final usage Waldur did not accept (the provider will settle it): chat_credits 6", report);
        Assert.Contains(_bed.Logs.Lines, line => line.Contains("Waldur refused the final usage of terminated resource", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_final_report_waits_for_an_answer_still_being_charged_and_includes_it()
    {
        var resource = await SubscribeAndChargeAsync();
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync(s => s.ResourceUuid == resource));
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        // A stream begun before the termination, its answer not yet settled.
        var hold = await ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, "late-stream");
        Assert.True(hold.IsHeld);
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(terminate, CancellationToken.None));
        Assert.Empty(_bed.Waldur.Usages);

        await ledger.SettleAsync(hold.ReservationId!.Value);
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(terminate));
        Assert.Equal("8.00", Assert.Single(_bed.Waldur.Usages)["usage"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_terminate_right_after_a_month_waldur_has_closed_completes_and_its_final_report_carries_that_months_rest()
    {
        await _bed.DisposeAsync();
        var clock = new TestClock(new DateTimeOffset(2026, 3, 31, 23, 0, 0, TimeSpan.Zero));
        _bed = await OrderTestBed.CreateAsync();
        await _bed.StartServicesAsync(clock);
        var resource = await SubscribeAndChargeAsync();
        var reporter = _bed.Services.GetRequiredService<UsageReporter>();
        await reporter.ReportAsync(); // March's last report Waldur takes: 6 credits
        clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 0, TimeSpan.Zero));
        await ChargeAsync(resource, "last-minute");
        clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 2, 0, TimeSpan.Zero));
        await ChargeAsync(resource, "april");
        clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 5, 0, TimeSpan.Zero));

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        var outcome = await _bed.ProcessUntilSettledAsync(terminate);
        clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 30, 0, TimeSpan.Zero));
        var next = await reporter.ReportAsync();

        Assert.Equal(OrderOutcome.Completed, outcome);
        Assert.Equal("done", _bed.Waldur.OrderState(terminate));
        // March's last-minute 2 credits, which Waldur no longer takes for March, are in April's final total with April's own 2.
        Assert.Equal([("2026-03-01", "6.00"), ("2026-04-01", "4.00")], _bed.Waldur.Usages
            .Select(u => (u["billing_period"]!.GetValue<string>(), u["usage"]!.GetValue<string>())).Order());
        var report = _bed.Waldur.Resource(resource)["report"]!.ToJsonString();
        Assert.Contains("Final usage reported: chat_credits 4 (2026-04)", report);
        Assert.Contains("chat_credits (2026-03): Waldur takes no more usage for this month; 2.00 carried into 2026-04", report);
        Assert.Equal(0, next.Posted);
        Assert.DoesNotContain(_bed.Logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }

    private async Task ChargeAsync(Guid resource, string request)
    {
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync(s => s.ResourceUuid == resource));
        var charge = await _bed.Services.GetRequiredService<CreditLedger>().ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, request);
        Assert.True(charge.IsCharged);
    }

    private async Task<Guid> SubscribeAndChargeAsync()
    {
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        Assert.Equal(OrderOutcome.Completed, await _bed.ProcessUntilSettledAsync(create));
        var resource = _bed.Waldur.ResourceOf(create);
        var subscription = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync(s => s.ResourceUuid == resource));
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        for (var i = 0; i < 3; i++)
        {
            await ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, $"m{i}");
        }

        return resource;
    }
}
