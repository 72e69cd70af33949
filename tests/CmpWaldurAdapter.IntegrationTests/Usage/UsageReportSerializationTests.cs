using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

public sealed class UsageReportSerializationOnSqliteTests() : UsageReportSerializationTests(DatabaseProvider.Sqlite);

public sealed class UsageReportSerializationOnPostgresTests() : UsageReportSerializationTests(DatabaseProvider.Postgres);

/// <summary>
/// set_usage replaces a month's total, so two reports of one resource must not cross on the way to Waldur (the
/// resource's usage lease orders them), and a failure for the moment is retried within the run with the total as it is then.
/// </summary>
public abstract class UsageReportSerializationTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string SetUsagePath = "/api/marketplace-component-usages/set_usage/";
    private static readonly DateTimeOffset March20 = new(2026, 3, 20, 10, 0, 0, TimeSpan.Zero);

    private readonly List<TimeSpan> _waits = [];

    /// <summary>The usage lease's own clock: its expiry and its renewals move only when a test advances it.</summary>
    private readonly FakeTimeProvider _leaseClock = new(March20);

    private CreditTestBed _bed = null!;
    private Subscription _subscription = null!;

    /// <summary>Runs between two attempts of set_usage, in place of their wait.</summary>
    private Func<Task>? _betweenAttempts;

    private UsageReporter Reporter => _bed.Services.GetRequiredService<UsageReporter>();

    private UsageReportLease Lease => _bed.Services.GetRequiredService<UsageReportLease>();

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(provider, March20);
        // The waits between attempts are recorded, not slept.
        await _bed.StartAsync(services =>
        {
            services.AddSingleton(new UsageSendRetries(TimeProvider.System)
            {
                WaitAsync = async (delay, _) =>
                {
                    lock (_waits)
                    {
                        _waits.Add(delay);
                    }

                    if (_betweenAttempts is { } meanwhile)
                    {
                        await meanwhile();
                    }
                },
            });
            services.AddSingleton(sp => ActivatorUtilities.CreateInstance<UsageReportLease>(sp, LeasesOn(sp, _leaseClock)));
        });
        _subscription = await _bed.AddSubscriptionAsync();
        await _bed.Ledger.GrantAsync(_subscription.CustomerId, 10_000, "test funding");
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Two_reports_of_one_resource_racing_leave_waldur_with_the_later_ledger_total()
    {
        await ChargeAsync(2);
        await ChargeAsync(2);
        // A Terminate order's final report reads the ledger (4) and its set_usage is held up on the way to Waldur.
        var held = _bed.Waldur.Hold("POST", SetUsagePath, times: 1);
        var final = Reporter.ReportResourceAsync(_subscription.ResourceUuid, CancellationToken.None);
        await Eventually.TrueAsync(() => held.Arrived == 1, because: "the final report's set_usage is on its way");
        // A charge settles, and the periodic run reads the newer total (6).
        await ChargeAsync(2);
        var runPosted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _bed.Waldur.Observe = (request, _) =>
        {
            if (request.Method == "POST" && request.Path == SetUsagePath && !held.Released)
            {
                runPosted.TrySetResult();
            }
        };
        var run = Reporter.ReportAsync();
        // The older set_usage arrives once the run has sent its own, or while the run waits for the resource's lease.
        await Eventually.TrueAsync(
            () => runPosted.Task.IsCompleted || _bed.Logs.Lines.Any(l => l.Contains("is being reported by another task", StringComparison.Ordinal)),
            because: "the run sends its total or waits for the final report");
        held.Release();
        var finalRows = await final;
        var report = await run;

        Assert.Equal([("chat_credits", "6.00")], WaldurHolds());
        Assert.Equal(["4.00", "6.00"], SetUsageBodies().Select(Amount));
        Assert.Contains(finalRows, r => r is { Component: "chat_credits", Ours: 4m, Action: UsageAction.Posted });
        // The run sent after the final report's total had landed.
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Ours: 6m, Waldur: 4m, Action: UsageAction.Posted });
    }

    [Fact]
    public async Task A_set_usage_failing_for_the_moment_is_retried_in_the_run_with_the_charges_settled_meanwhile()
    {
        await ChargeAsync(2);
        await ChargeAsync(2);
        _bed.Waldur.Fail("POST", SetUsagePath, 503, times: 1);
        _betweenAttempts = () => ChargeAsync(2);

        var report = await Reporter.ReportAsync();

        Assert.Equal([UsageSendRetries.Backoff[0]], _waits);
        Assert.Equal(["4.00", "6.00"], SetUsageBodies().Select(Amount));
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Ours: 6m, Action: UsageAction.Posted });
        Assert.False(report.Unfinished);
        Assert.Equal([("chat_credits", "6.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_retry_honours_retry_after_and_does_not_resend_a_total_waldur_stored_despite_the_failure()
    {
        await ChargeAsync(2);
        // Waldur stores the total, but its answer is lost behind a 503 asking for 3 seconds.
        _bed.Waldur.LoseAnswer("POST", SetUsagePath, 503, retryAfter: TimeSpan.FromSeconds(3));

        var report = await Reporter.ReportAsync();

        Assert.Equal([TimeSpan.FromSeconds(3)], _waits);
        Assert.Equal(["2.00"], SetUsageBodies().Select(Amount));
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Ours: 2m, Action: UsageAction.Posted });
        Assert.False(report.Unfinished);
        Assert.Equal([("chat_credits", "2.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_run_that_cannot_get_the_resources_lease_leaves_it_to_the_next_run()
    {
        await ChargeAsync(2);
        await ChargeAsync(2);
        // Another replica's report of the resource holds its lease for the whole run.
        var leases = _bed.Services.GetRequiredService<DatabaseLeases>();
        var name = UsageReportLease.Name(_subscription.ResourceUuid);
        var holding = await leases.TryAcquireWaitingAsync(name, TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(holding);

        var blocked = await Reporter.ReportAsync();
        await leases.ReleaseAsync(name, holding);
        var next = await Reporter.ReportAsync();

        Assert.True(blocked.Unfinished);
        Assert.Contains(blocked.Rows, r => r is { Component: "chat_credits", Ours: 4m, Action: UsageAction.Busy });
        Assert.Equal(1, next.Posted);
        Assert.False(next.Unfinished);
        Assert.Equal(["4.00"], SetUsageBodies().Select(Amount));
        Assert.Equal([("chat_credits", "4.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_lease_left_by_a_crashed_report_frees_after_a_minute_and_the_next_report_sends()
    {
        await ChargeAsync(2);
        // A report of another replica took the resource's lease and died: its renewals, on its own clock, never come.
        var crashed = ActivatorUtilities.CreateInstance<UsageReportLease>(_bed.Services, LeasesOn(_bed.Services, new FakeTimeProvider(March20), new AdapterInstance()));
        await using var abandoned = crashed.For(_subscription.ResourceUuid); // disposed after the test, when the lease is another's
        Assert.True(await abandoned.TakeAsync(CancellationToken.None));

        // The lease lasts a minute (with Waldur's default attempt timeout of 30 s).
        _leaseClock.Advance(TimeSpan.FromMinutes(1) - TimeSpan.FromSeconds(1));
        var blocked = await Reporter.ReportAsync();
        _leaseClock.Advance(TimeSpan.FromSeconds(2));
        var next = await Reporter.ReportAsync();

        Assert.Contains(blocked.Rows, r => r is { Component: "chat_credits", Ours: 2m, Action: UsageAction.Busy });
        Assert.Equal(1, next.Posted);
        Assert.False(next.Unfinished);
        Assert.Equal(["2.00"], SetUsageBodies().Select(Amount));
        Assert.Equal([("chat_credits", "2.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_report_outlasting_its_lease_keeps_it_renewed_and_another_report_meanwhile_leaves_the_resource()
    {
        await ChargeAsync(2);
        _bed.Waldur.Fail("POST", SetUsagePath, 503, times: 1);
        IReadOnlyList<UsageReportRow>? meanwhile = null;
        _betweenAttempts = async () =>
        {
            // The report takes longer than its lease between two attempts; its holding renews it every third of a lease.
            for (var third = 1; third <= 4; third++)
            {
                _leaseClock.Advance(Lease.Duration / 3);
                var renewed = _leaseClock.GetUtcNow() + Lease.Duration;
                await Eventually.TrueAsync(async () => (await LeaseAsync()).ExpiresAt == renewed, TimeSpan.FromSeconds(10), "the lease is renewed");
            }

            // A Terminate order's final report of the resource, past the lease's first expiry, finds it still held.
            meanwhile = await Reporter.ReportResourceAsync(_subscription.ResourceUuid, CancellationToken.None);
        };

        var report = await Reporter.ReportAsync();

        Assert.Contains(meanwhile!, r => r is { Component: "chat_credits", Ours: 2m, Action: UsageAction.Busy });
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Ours: 2m, Action: UsageAction.Posted });
        Assert.Equal(["2.00", "2.00"], SetUsageBodies().Select(Amount)); // the failed attempt and the report's retry
        Assert.Equal([("chat_credits", "2.00")], WaldurHolds());
    }

    [Fact]
    public async Task A_report_whose_lease_another_report_took_over_sends_no_more_set_usage()
    {
        await ChargeAsync(2);
        _bed.Waldur.Fail("POST", SetUsagePath, 503, times: 1);
        // Between the attempts the report's renewals are lost for a whole lease, and another replica's report takes it over.
        _betweenAttempts = async () =>
        {
            await _bed.QueryAsync(db => db.Leases.Where(l => l.Name == UsageReportLease.Name(_subscription.ResourceUuid))
                .ExecuteUpdateAsync(set => set.SetProperty(l => l.Owner, "another-replica")));
            _leaseClock.Advance(Lease.Duration); // a takeover comes only once the lease ran out
        };

        var report = await Reporter.ReportAsync();

        Assert.Equal(["2.00"], SetUsageBodies().Select(Amount)); // the failed attempt only
        Assert.Contains(report.Rows, r => r is { Component: "chat_credits", Ours: 2m, Action: UsageAction.Busy });
        Assert.True(report.Unfinished);
        Assert.Empty(WaldurHolds());
        Assert.Contains(_bed.Logs.Lines, l => l.Contains("another report of the resource took over its lease", StringComparison.Ordinal));
        Assert.Equal("another-replica", (await LeaseAsync()).Owner); // not released under its new holder
    }

    /// <summary>The adapter's leases on <paramref name="clock"/>, of this process or of another replica's <paramref name="instance"/>.</summary>
    private static DatabaseLeases LeasesOn(IServiceProvider services, TimeProvider clock, AdapterInstance? instance = null) =>
        new(services.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), instance ?? services.GetRequiredService<AdapterInstance>(), clock);

    private Task<DatabaseLease> LeaseAsync() =>
        _bed.QueryAsync(db => db.Leases.AsNoTracking().SingleAsync(l => l.Name == UsageReportLease.Name(_subscription.ResourceUuid)));

    private async Task ChargeAsync(long credits)
    {
        var result = await _bed.Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, credits, 3, Guid.NewGuid().ToString());
        Assert.Equal(ChargeStatus.Charged, result.Status);
    }

    private List<JsonObject> SetUsageBodies() =>
        _bed.Waldur.Requests.Where(r => r.Method == "POST" && r.Path == SetUsagePath).OrderBy(r => r.DateTime).Select(r => JsonNode.Parse(r.Body!)!.AsObject()).ToList();

    private static string Amount(JsonObject body) => body["usages"]!.AsArray().Single()!["amount"]!.GetValue<string>();

    private List<(string, string)> WaldurHolds() =>
        _bed.Waldur.Usages
            .Where(u => u["resource_uuid"]!.GetValue<string>() == _subscription.ResourceUuid.ToString())
            .Select(u => (u["type"]!.GetValue<string>(), u["usage"]!.GetValue<string>()))
            .ToList();
}
