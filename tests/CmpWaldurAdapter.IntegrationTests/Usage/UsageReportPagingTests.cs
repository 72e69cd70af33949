using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

/// <summary>
/// Waldur's usages of an offering-month read in pages of two: Waldur answers a page past the last with 404, so a month
/// whose records fill the last page exactly must still be read, or its resources would fail every run.
/// </summary>
public sealed class UsageReportPagingTests : IAsyncLifetime
{
    private const string SetUsagePath = "/api/marketplace-component-usages/set_usage/";
    private static readonly DateTimeOffset March20 = new(2026, 3, 20, 10, 0, 0, TimeSpan.Zero);
    private static readonly DateOnly March = new(2026, 3, 1);

    private CreditTestBed _bed = null!;

    private UsageReporter Reporter => _bed.Services.GetRequiredService<UsageReporter>();

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite, March20);
        _bed.Settings["Waldur:PageSize"] = "2";
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_month_whose_usages_fill_the_last_page_exactly_gets_a_new_resources_usage_posted()
    {
        var customer = Guid.NewGuid();
        var reported = await _bed.AddSubscriptionAsync(customer);
        var alsoReported = await _bed.AddSubscriptionAsync(customer);
        var fresh = await _bed.AddSubscriptionAsync(customer);
        await _bed.Ledger.GrantAsync(customer, 10_000, "test funding");
        foreach (var subscription in new[] { reported, alsoReported, fresh })
        {
            var charge = await _bed.Ledger.ChargeAsync(customer, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, Guid.NewGuid().ToString());
            Assert.Equal(ChargeStatus.Charged, charge.Status);
        }

        // An earlier run reported two of them: Waldur holds exactly one page of this offering's March usages.
        _bed.Waldur.SeedUsage(reported.ResourceUuid, "chat_credits", March, "2.00");
        _bed.Waldur.SeedUsage(alsoReported.ResourceUuid, "chat_credits", March, "2.00");

        var report = await Reporter.ReportAsync();

        Assert.False(report.Unfinished);
        Assert.Equal(1, report.Posted);
        var post = Assert.Single(_bed.Waldur.Requests, r => r.Method == "POST" && r.Path == SetUsagePath);
        var body = JsonNode.Parse(post.Body!)!;
        Assert.Equal(fresh.ResourceUuid.ToString(), body["resource"]!.GetValue<string>());
        Assert.Equal("2.00", body["usages"]![0]!["amount"]!.GetValue<string>());
        Assert.Contains(report.Rows, r => r.ResourceUuid == reported.ResourceUuid && r.Action == UsageAction.Unchanged);
        Assert.Contains(report.Rows, r => r.ResourceUuid == alsoReported.ResourceUuid && r.Action == UsageAction.Unchanged);
    }
}
