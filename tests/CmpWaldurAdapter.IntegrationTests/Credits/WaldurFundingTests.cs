using System.Diagnostics;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Credits;

public sealed class WaldurFundingOnPostgresTests() : WaldurFundingTests(DatabaseProvider.Postgres);

public sealed class WaldurFundingOnSqliteTests() : WaldurFundingTests(DatabaseProvider.Sqlite);

/// <summary>
/// The Waldur-funded balance against a WireMock Waldur:
/// balance = floor(Σ applicable customer-credit value / credit price) − uninvoiced charges.
/// </summary>
public abstract class WaldurFundingTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string CreditsPath = "/api/customer-credits/";
    private static readonly DateTimeOffset March10 = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private CreditTestBed _bed = null!;
    private Subscription _subscription = null!;
    private Guid _second;

    private CreditLedger Ledger => _bed.Ledger;

    public async Task InitializeAsync() => _bed = await CreditTestBed.CreateAsync(provider, March10);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task StartAsync(string grace = "00:00:00")
    {
        _bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        _bed.Settings["Credits:CreditPrice"] = "0.01";
        _bed.Settings["Credits:FundingCacheLifetime"] = "00:01:00";
        _bed.Settings["Credits:FundingTimeout"] = "00:00:02";
        _bed.Settings["Credits:InvoiceFinalizationGrace"] = grace;
        // A second offering this adapter serves, for credits limited to one of them.
        _second = _bed.Waldur.AddOffering("Second Agent");
        _bed.Settings["Offerings:1:Uuid"] = _second.ToString();
        _bed.Settings["Offerings:1:Slug"] = "second-agent";
        await _bed.StartAsync();
        _subscription = await _bed.AddSubscriptionAsync();
    }

    [Fact]
    public async Task The_balance_is_the_applicable_money_in_credits_minus_what_waldur_has_not_invoiced()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var general = _bed.Waldur.AddCustomerCredit(customer, 100.00m);
        _bed.Waldur.AddCustomerCredit(customer, 25.505m, offerings: [_bed.Offering]);
        _bed.Waldur.AddCustomerCredit(customer, 40m, offerings: [Guid.NewGuid()]);
        _bed.Waldur.AddCustomerCredit(customer, 1000m, endDate: new DateOnly(2026, 3, 1));
        _bed.Waldur.AddCustomerCredit(Guid.NewGuid(), 500m);

        var funded = await Ledger.BalanceAsync(customer);
        for (var i = 0; i < 25; i++)
        {
            await ChargeAsync($"m{i}", 2);
        }

        var afterCharges = await Ledger.BalanceAsync(customer);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(2));
        var reread = await Ledger.BalanceAsync(customer);
        _bed.Waldur.AddCustomerCredit(customer, 10m);
        _bed.Clock.Advance(TimeSpan.FromMinutes(2));
        var toppedUp = await Ledger.BalanceAsync(customer);

        // Waldur finalizes March at midnight on 1 April and takes its 50 credits (0.50) off the credit.
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 5, 0, TimeSpan.Zero));
        _bed.Waldur.SetCustomerCreditValue(general, 99.50m);
        var april = await Ledger.BalanceAsync(customer);

        Assert.Equal(12550, funded.Balance);
        Assert.Equal(12500, afterCharges.Balance);
        Assert.Equal(12500, reread.Balance);
        Assert.Equal(13500, toppedUp.Balance);
        Assert.Equal(13500, april.Balance);
        Assert.Equal(CreditFunding.WaldurCustomerCredits, april.Funding);
        // One of the credits is not limited: every subscription may spend the pool.
        Assert.Null(april.CoveredOfferings);
        Assert.Equal(april.FundedAt, _bed.Clock.GetUtcNow());
    }

    [Fact]
    public async Task Credits_that_fill_the_last_page_exactly_are_all_counted()
    {
        // Waldur answers a page past the last with 404: the read must stop on the full last page, not ask for the next.
        _bed.Settings["Waldur:PageSize"] = "2";
        await StartAsync();
        var customer = _subscription.CustomerId;
        _bed.Waldur.AddCustomerCredit(customer, 10.00m);
        _bed.Waldur.AddCustomerCredit(customer, 5.00m);

        var balance = await Ledger.BalanceAsync(customer);

        Assert.Equal(CreditFunding.WaldurCustomerCredits, balance.Funding);
        Assert.Equal(1500, balance.Balance);
        Assert.Equal(1, _bed.Waldur.Count("GET", CreditsPath));
    }

    [Fact]
    public async Task A_credit_limited_to_one_served_offering_pays_only_for_that_offerings_subscriptions()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var other = await _bed.AddSubscriptionAsync(customer, offering: _second);
        _bed.Waldur.AddCustomerCredit(customer, 1.00m, offerings: [_bed.Offering, Guid.NewGuid()]);

        var covered = await ChargeOrRefuseAsync("covered", 2);
        var charge = await Ledger.ChargeAsync(customer, other.Id, other.OfferingUuid, ActionClass.ChatMessage, 2, 3, "uncovered-charge");
        var hold = await Ledger.ReserveAsync(customer, other.Id, other.OfferingUuid, ActionClass.ChatMessage, 2, 3, "uncovered-hold");
        var free = await Ledger.ReserveAsync(customer, other.Id, other.OfferingUuid, ActionClass.ChatMessage, 0, 3, "uncovered-free");

        Assert.Equal(ChargeStatus.Charged, covered.Status);
        Assert.Equal((ChargeStatus.Refused, CreditRefusal.OfferingNotCovered), (charge.Status, charge.Refusal));
        Assert.Equal((ReservationStatus.Refused, CreditRefusal.OfferingNotCovered), (hold.Status, hold.Refusal));
        Assert.Equal(ReservationStatus.Held, free.Status);
        var balance = await Ledger.BalanceAsync(customer);
        Assert.Equal((98L, 0L), (balance.Balance, balance.Reserved));
        // What the CLI and the console show: only the served offering the credit lists.
        Assert.Equal([_bed.Offering], balance.CoveredOfferings);
        Assert.Equal((true, false), (balance.Covers(_bed.Offering), balance.Covers(_second)));
        // The refusals came from the cached read: Waldur was asked once.
        Assert.Equal(1, _bed.Waldur.Count("GET", CreditsPath));
    }

    [Fact]
    public async Task A_credit_limited_to_offerings_this_adapter_does_not_serve_funds_none_of_its_subscriptions()
    {
        await StartAsync();
        _bed.Waldur.AddCustomerCredit(_subscription.CustomerId, 100m, offerings: [Guid.NewGuid()]);

        var charge = await ChargeOrRefuseAsync("elsewhere", 2);

        Assert.Equal(CreditRefusal.OfferingNotCovered, charge.Refusal);
        Assert.Equal(0, (await Ledger.BalanceAsync(_subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task Uninvoiced_charges_of_offerings_a_limited_credit_does_not_cover_are_not_taken_off_it()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var other = await _bed.AddSubscriptionAsync(customer, offering: _second);
        var credit = _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        await ChargeAsync("covered", 10);
        Assert.True((await Ledger.ChargeAsync(customer, other.Id, other.OfferingUuid, ActionClass.ChatMessage, 30, 3, "before-the-limit")).IsCharged);

        // Staff limit the credit to the first offering: Waldur will invoice the second one's usage, not take it off the credit.
        _bed.Waldur.SetCustomerCreditOfferings(credit, [_bed.Offering]);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(2));

        Assert.Equal(90, (await Ledger.BalanceAsync(customer)).Balance);
    }

    [Fact]
    public async Task A_replica_that_never_read_waldur_applies_the_last_read_limit_while_waldur_is_down()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var other = await _bed.AddSubscriptionAsync(customer, offering: _second);
        _bed.Waldur.AddCustomerCredit(customer, 1.00m, offerings: [_bed.Offering]);
        await ChargeAsync("read", 2);

        // As a freshly started replica: nothing in memory, only the funding kept with the account.
        _bed.Services.GetRequiredService<WaldurFunding>().Invalidate(customer);
        _bed.Waldur.Break("GET", CreditsPath, 503);
        var uncovered = await Ledger.ChargeAsync(customer, other.Id, other.OfferingUuid, ActionClass.ChatMessage, 2, 3, "down-uncovered");
        var covered = await ChargeOrRefuseAsync("down-covered", 2);

        Assert.Equal(CreditRefusal.OfferingNotCovered, uncovered.Refusal);
        Assert.Equal(ChargeStatus.Charged, covered.Status);
    }

    [Fact]
    public async Task Within_the_finalization_grace_the_previous_month_still_counts_as_uninvoiced()
    {
        await StartAsync(grace: "02:00:00");
        var customer = _subscription.CustomerId;
        var credit = _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        await ChargeAsync("march", 30);

        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 30, 0, TimeSpan.Zero));
        var beforeFinalization = await Ledger.BalanceAsync(customer);
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 2, 30, 0, TimeSpan.Zero));
        _bed.Waldur.SetCustomerCreditValue(credit, 0.70m);
        var afterFinalization = await Ledger.BalanceAsync(customer);

        Assert.Equal(70, beforeFinalization.Balance);
        Assert.Equal(70, afterFinalization.Balance);
    }

    [Fact]
    public async Task East_of_utc_the_previous_month_stops_counting_when_waldur_invoices_it_at_its_local_midnight()
    {
        _bed.Settings["Waldur:TimeZone"] = "Europe/Berlin";
        await StartAsync();
        var customer = _subscription.CustomerId;
        var credit = _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        await ChargeAsync("march", 30);

        // 23:30 on 31 March in Berlin: March is still open there.
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 3, 31, 21, 30, 0, TimeSpan.Zero));
        var beforeMidnightThere = await Ledger.BalanceAsync(customer);
        // 01:30 on 1 April in Berlin, still March in UTC: Waldur has invoiced March and taken its 30 credits off the credit.
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 30, 0, TimeSpan.Zero));
        _bed.Waldur.SetCustomerCreditValue(credit, 0.70m);
        var afterMidnightThere = await Ledger.BalanceAsync(customer);

        Assert.Equal(70, beforeMidnightThere.Balance);
        Assert.Equal(70, afterMidnightThere.Balance);
    }

    [Fact]
    public async Task Usage_carried_out_of_a_month_waldur_closed_counts_as_uninvoiced_until_the_month_it_was_carried_into_is_invoiced()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var credit = _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        var reporter = _bed.Services.GetRequiredService<UsageReporter>();
        _bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 40, 0, TimeSpan.Zero));
        await ChargeAsync("reported", 10);
        await reporter.ReportAsync();
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 55, 0, TimeSpan.Zero));
        await ChargeAsync("after-the-last-report", 20);

        // Waldur invoices March as it holds it (10 credits) at midnight; the next report carries the other 20 into April.
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 10, 0, TimeSpan.Zero));
        _bed.Waldur.SetCustomerCreditValue(credit, 0.90m);
        await reporter.ReportAsync();
        _bed.Clock.Advance(TimeSpan.FromMinutes(2));
        var april = await Ledger.BalanceAsync(customer);
        // April's invoice takes them off the credit: from then on they no longer count.
        _bed.Clock.SetUtcNow(new DateTimeOffset(2026, 5, 1, 0, 10, 0, TimeSpan.Zero));
        _bed.Waldur.SetCustomerCreditValue(credit, 0.70m);
        var may = await Ledger.BalanceAsync(customer);

        Assert.Equal("20.00", _bed.Waldur.Usages.Single(u => u["billing_period"]!.GetValue<string>() == "2026-04-01")["usage"]!.GetValue<string>());
        Assert.Equal(70, april.Balance);
        Assert.Equal(70, may.Balance);
    }

    [Fact]
    public async Task Many_concurrent_first_charges_read_waldur_once_and_stay_exact()
    {
        await StartAsync();
        _bed.Waldur.AddCustomerCredit(_subscription.CustomerId, 1.00m);

        var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Task.Run(() => ChargeOrRefuseAsync($"c{i}", 2))));

        Assert.Equal(50, results.Count(r => r.Status == ChargeStatus.Charged));
        Assert.Equal(150, results.Count(r => r.Refusal == CreditRefusal.InsufficientCredits));
        Assert.Equal(1, _bed.Waldur.Count("GET", CreditsPath));
        Assert.Equal(0, (await Ledger.BalanceAsync(_subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task Refreshing_while_charges_run_never_loses_or_double_counts_a_charge()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        _bed.Waldur.AddCustomerCredit(customer, 10.00m);
        var funding = _bed.Services.GetRequiredService<WaldurFunding>();
        await Ledger.BalanceAsync(customer);

        using var stop = new CancellationTokenSource();
        var refresher = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                funding.Invalidate(customer);
                Assert.True((await Ledger.BalanceAsync(customer)).Balance >= 0);
            }
        });
        var results = await Task.WhenAll(Enumerable.Range(0, 400).Select(i => Task.Run(() => ChargeOrRefuseAsync($"r{i}", 3))));
        await stop.CancelAsync();
        await refresher;
        funding.Invalidate(customer);
        var final = await Ledger.BalanceAsync(customer);

        var charged = results.Count(r => r.Status == ChargeStatus.Charged) * 3;
        Assert.Equal(333 * 3, charged);
        Assert.Equal(1000 - charged, final.Balance);
    }

    [Fact]
    public async Task A_hold_settles_in_full_when_the_money_behind_it_shrank_meanwhile_and_the_balance_stops_at_zero()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var credit = _bed.Waldur.AddCustomerCredit(customer, 0.10m);
        await Ledger.BalanceAsync(customer);
        var hold = await Ledger.ReserveAsync(customer, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 4, 1, "held");
        Assert.True(hold.IsHeld);

        // The credit's end date passes, or Waldur invoices more than the adapter's own usage: 2 credits of money left.
        _bed.Waldur.SetCustomerCreditValue(credit, 0.02m);
        _bed.Services.GetRequiredService<WaldurFunding>().Invalidate(customer);
        Assert.Equal(2, (await Ledger.BalanceAsync(customer)).Balance);

        var settled = await Ledger.SettleAsync(hold.ReservationId!.Value);

        Assert.Equal((SettleStatus.Settled, 4L), (settled.Status, settled.Credits));
        var after = await Ledger.BalanceAsync(customer);
        Assert.Equal((0L, 0L), (after.Balance, after.Reserved));
    }

    [Fact]
    public async Task A_read_of_waldur_older_than_the_one_applied_does_not_overwrite_it()
    {
        await StartAsync();
        var customer = _subscription.CustomerId;
        var store = _bed.Services.GetRequiredService<ICreditStore>();
        var period = BillingPeriod.Of(March10);

        // Two replicas read Waldur a moment apart (100, then 50 after an invoice); the later read is written first.
        await store.RefreshFundingAsync(customer, 50, null, period, March10.AddSeconds(2), CancellationToken.None);
        var stale = await store.RefreshFundingAsync(customer, 100, null, period, March10.AddSeconds(1), CancellationToken.None);

        Assert.Equal((50L, 50L), (stale.FundedCredits, stale.Balance));
        Assert.Equal(50, (await Ledger.BalanceAsync(customer)).Balance);
    }

    [Fact]
    public async Task When_waldur_is_down_charging_continues_against_the_last_funding_read()
    {
        await StartAsync();
        _bed.Waldur.AddCustomerCredit(_subscription.CustomerId, 0.10m);
        Assert.Equal(ChargeStatus.Charged, (await ChargeOrRefuseAsync("before", 2)).Status);

        _bed.Waldur.Break("GET", CreditsPath, 503);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(5));
        var during = new List<ChargeResult>();
        for (var i = 0; i < 6; i++)
        {
            during.Add(await ChargeOrRefuseAsync($"down-{i}", 2));
        }

        Assert.Equal(4, during.Count(r => r.Status == ChargeStatus.Charged));
        Assert.Equal(2, during.Count(r => r.Refusal == CreditRefusal.InsufficientCredits));
        // One failed read, then the last funding is used without asking again for a while.
        Assert.Equal(1 + 3, _bed.Waldur.Count("GET", CreditsPath));
        Assert.Equal(0, (await Ledger.BalanceAsync(_subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task An_organization_waldur_never_answered_for_is_refused_and_a_slow_waldur_does_not_hold_charges()
    {
        await StartAsync();
        _bed.Waldur.Break("GET", CreditsPath, 503, delay: TimeSpan.FromSeconds(8));

        var watch = Stopwatch.StartNew();
        var charge = await ChargeOrRefuseAsync("first", 2);
        var hold = await Ledger.ReserveAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "second");
        watch.Stop();

        Assert.Equal(CreditRefusal.FundingUnavailable, charge.Refusal);
        Assert.Equal(CreditRefusal.FundingUnavailable, hold.Refusal);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4.5), $"Charging waited {watch.Elapsed} for Waldur.");
    }

    [Fact]
    public async Task A_free_action_is_served_while_waldur_cannot_be_read_and_asks_waldur_nothing()
    {
        await StartAsync();
        _bed.Waldur.Break("GET", CreditsPath, 503);

        var hold = await Ledger.ReserveAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free-hold");
        var charge = await Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free-charge");
        var paid = await Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "paid");

        Assert.Equal(ReservationStatus.Held, hold.Status);
        Assert.Equal(ChargeStatus.Charged, charge.Status);
        Assert.Equal(CreditRefusal.FundingUnavailable, paid.Refusal);
    }

    [Fact]
    public async Task Grants_are_refused_because_the_money_lives_in_waldur()
    {
        await StartAsync();

        var refused = await Assert.ThrowsAsync<CreditFundingException>(() => Ledger.GrantAsync(_subscription.CustomerId, 100, "bonus"));

        Assert.Contains("Waldur", refused.Message);
    }

    private async Task ChargeAsync(string request, long credits) =>
        Assert.Equal(ChargeStatus.Charged, (await ChargeOrRefuseAsync(request, credits)).Status);

    private Task<ChargeResult> ChargeOrRefuseAsync(string request, long credits) =>
        Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, credits, 3, request);
}
