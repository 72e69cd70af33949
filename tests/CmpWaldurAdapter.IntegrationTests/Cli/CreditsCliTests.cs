using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Cli;

/// <summary><c>credits grant</c>, <c>credits balance</c> and <c>usage report</c>, run in-process as operators run them.</summary>
public sealed class CreditsCliTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var context = new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(_bed.Settings);
            builder.Services.AddSingleton<ILogEventSink>(_bed.Logs);
        });
        var exit = await AdapterCli.RunAsync(args, context);
        return (exit, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("credits")]
    [InlineData("credits", "grant")]
    [InlineData("credits", "balance")]
    [InlineData("usage")]
    [InlineData("usage", "report")]
    public async Task Every_command_explains_itself(params string[] command)
    {
        var (exit, output, _) = await RunAsync([.. command, "--help"]);

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains("Usage:", output);
        Assert.Contains(string.Join(' ', command), output);
    }

    [Fact]
    public async Task Grant_adds_credits_once_per_request_id_and_balance_shows_them()
    {
        var customer = Guid.NewGuid().ToString();

        var granted = await RunAsync("credits", "grant", "--customer", customer, "--amount", "500", "--reason", "pilot", "--request-id", "pilot-1");
        var replay = await RunAsync("credits", "grant", "--customer", customer, "--amount", "500", "--reason", "pilot", "--request-id", "pilot-1", "--output", "json");
        var more = await RunAsync("credits", "grant", "--customer", customer, "--amount", "25", "--reason", "goodwill");
        var table = await RunAsync("credits", "balance", "--customer", customer);
        var json = await RunAsync("credits", "balance", "--customer", customer, "--output", "json");

        Assert.Equal(ExitCodes.Success, granted.Exit);
        Assert.Contains("Granted 500 credits", granted.Output);
        Assert.Equal(ExitCodes.Success, replay.Exit);
        Assert.False(JsonNode.Parse(replay.Output)!["granted"]!.GetValue<bool>());
        Assert.Contains("Balance 525", more.Output);
        Assert.Contains("AVAILABLE", table.Output);
        Assert.Contains($"{customer}  525", table.Output);
        var balance = JsonNode.Parse(json.Output)!;
        Assert.Equal((525L, 0L, 525L, "Ledger"), (balance["balance"]!.GetValue<long>(), balance["reserved"]!.GetValue<long>(), balance["available"]!.GetValue<long>(), balance["funding"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_request_id_reused_for_another_amount_is_an_error_and_adds_nothing()
    {
        var customer = Guid.NewGuid().ToString();
        await RunAsync("credits", "grant", "--customer", customer, "--amount", "100", "--reason", "invoice 7", "--request-id", "inv-7");

        var corrected = await RunAsync("credits", "grant", "--customer", customer, "--amount", "1000", "--reason", "invoice 7", "--request-id", "inv-7", "--output", "json");
        var json = await RunAsync("credits", "balance", "--customer", customer, "--output", "json");

        Assert.Equal(ExitCodes.Error, corrected.Exit);
        Assert.Contains("already granted 100 credits", corrected.Error);
        Assert.Equal(string.Empty, corrected.Output.Trim());
        Assert.Equal(100L, JsonNode.Parse(json.Output)!["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task Balance_of_an_organization_never_funded_is_zero_not_an_error()
    {
        var (exit, output, _) = await RunAsync("credits", "balance", "--customer", Guid.NewGuid().ToString());

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains("has no credits yet", output);
    }

    [Theory]
    [InlineData("--amount", "0")]
    [InlineData("--amount", "-5")]
    [InlineData("--amount", "lots")]
    [InlineData("--customer", "acme")]
    public async Task Bad_grant_arguments_exit_with_2_and_say_why(string option, string value)
    {
        var args = new Dictionary<string, string> { ["--customer"] = Guid.NewGuid().ToString(), ["--amount"] = "10", ["--reason"] = "test" };
        args[option] = value;

        var (exit, output, error) = await RunAsync(["credits", "grant", .. args.SelectMany(a => new[] { a.Key, a.Value })]);

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains(option == "--amount" ? "amount" : "acme", error);
        Assert.Equal(string.Empty, output);
    }

    [Fact]
    public async Task A_grant_without_a_reason_is_refused()
    {
        var missing = await RunAsync("credits", "grant", "--customer", Guid.NewGuid().ToString(), "--amount", "10");
        var blank = await RunAsync("credits", "grant", "--customer", Guid.NewGuid().ToString(), "--amount", "10", "--reason", " ");

        Assert.Equal(ExitCodes.Error, missing.Exit);
        Assert.Contains("--reason", missing.Error);
        Assert.Equal(ExitCodes.Error, blank.Exit);
        Assert.Contains("--reason", blank.Error);
    }

    [Fact]
    public async Task Grants_are_refused_when_waldur_funds_the_balance()
    {
        _bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        _bed.Settings["Credits:CreditPrice"] = "0.01";

        var (exit, _, error) = await RunAsync("credits", "grant", "--customer", Guid.NewGuid().ToString(), "--amount", "10", "--reason", "bonus");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("customer credits in Waldur", error);
    }

    [Fact]
    public async Task Usage_report_shows_sends_and_reports_failures_with_exit_codes()
    {
        await _bed.StartAsync();
        var subscription = await _bed.AddSubscriptionAsync();
        await _bed.Ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        await _bed.Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "m1");
        var period = DateTimeOffset.UtcNow.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);

        var dry = await RunAsync("usage", "report", "--dry-run");
        var heldAfterDryRun = _bed.Waldur.Usages.Count;
        _bed.Waldur.Fail("POST", "/api/marketplace-component-usages/set_usage/", 503, times: 10);
        var failed = await RunAsync("usage", "report");
        _bed.Waldur.Heal();
        var sent = await RunAsync("usage", "report", "--period", period, "--output", "json");
        var again = await RunAsync("usage", "report");

        Assert.Equal(ExitCodes.Success, dry.Exit);
        Assert.Contains("Dry run: 1 total(s) would be sent", dry.Output);
        Assert.Contains("WouldPost", dry.Output);
        Assert.Equal(0, heldAfterDryRun);
        Assert.Equal(ExitCodes.Unfinished, failed.Exit);
        Assert.Contains("Failed", failed.Output);
        Assert.Equal(ExitCodes.Success, sent.Exit);
        var posted = JsonNode.Parse(sent.Output)!["rows"]!.AsArray().Single(r => r!["action"]!.GetValue<string>() == "Posted")!;
        Assert.Equal(("chat_credits", 2m, period), (posted["component"]!.GetValue<string>(), posted["ours"]!.GetValue<decimal>(), posted["period"]!.GetValue<string>()));
        Assert.Equal(ExitCodes.Success, again.Exit);
        Assert.Contains("0 total(s) were sent", again.Output);
        Assert.Equal("2.00", Assert.Single(_bed.Waldur.Usages)["usage"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("2026-13")]
    [InlineData("March")]
    public async Task A_bad_period_exits_with_2(string period)
    {
        var (exit, _, error) = await RunAsync("usage", "report", "--period", period);

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("YYYY-MM", error);
    }
}
