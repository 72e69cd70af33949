using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.EntityFrameworkCore;
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
            builder.Services.WithoutUsageRetryWaits();
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

    /// <summary>An organization that has ordered here (recorded with its Waldur name, owning a subscription), as a grant's target.</summary>
    private async Task<Guid> OrderedAsync(string name = "Buyer")
    {
        await _bed.StartAsync();
        var customer = Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        await _bed.QueryAsync(db =>
        {
            db.Customers.Add(new Customer { Id = customer, Name = name, CreatedAt = now, UpdatedAt = now });
            return db.SaveChangesAsync();
        });
        await _bed.AddSubscriptionAsync(customer);
        return customer;
    }

    [Fact]
    public async Task Grant_adds_credits_once_per_request_id_and_balance_shows_them()
    {
        var customer = (await OrderedAsync()).ToString();

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
        var customer = (await OrderedAsync()).ToString();
        await RunAsync("credits", "grant", "--customer", customer, "--amount", "100", "--reason", "invoice 7", "--request-id", "inv-7");

        var corrected = await RunAsync("credits", "grant", "--customer", customer, "--amount", "1000", "--reason", "invoice 7", "--request-id", "inv-7", "--output", "json");
        var json = await RunAsync("credits", "balance", "--customer", customer, "--output", "json");

        Assert.Equal(ExitCodes.Error, corrected.Exit);
        Assert.Contains("already granted 100 credits", corrected.Error);
        Assert.Equal(string.Empty, corrected.Output.Trim());
        Assert.Equal(100L, JsonNode.Parse(json.Output)!["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task The_same_grant_run_again_without_a_request_id_adds_once_and_says_it_was_a_replay()
    {
        var customer = Guid.NewGuid().ToString();

        // Funded in advance of its first order; the reruns without --new-customer still replay.
        var granted = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "PO 123", "--new-customer");
        // The SSH session dropped before the output arrived, so the operator runs the command again (and a retry wrapper too).
        var rerun = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "PO 123");
        var retried = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "  PO 123 ", "--output", "json");
        var json = await RunAsync("credits", "balance", "--customer", customer, "--output", "json");

        Assert.Equal(ExitCodes.Success, granted.Exit);
        Assert.Contains("Granted 10000 credits", granted.Output);
        Assert.Equal(ExitCodes.Success, rerun.Exit);
        Assert.Contains("Replay", rerun.Output);
        Assert.Contains("nothing added. Balance 10000, available 10000", rerun.Output);
        Assert.Equal(ExitCodes.Success, retried.Exit);
        var replay = JsonNode.Parse(retried.Output)!;
        Assert.Equal((false, true, 10000L), (replay["granted"]!.GetValue<bool>(), replay["replayed"]!.GetValue<bool>(), replay["balance"]!.GetValue<long>()));
        Assert.StartsWith("grant:", replay["requestId"]!.GetValue<string>());
        Assert.Equal(10000L, JsonNode.Parse(json.Output)!["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task Without_a_request_id_another_amount_or_reason_is_another_grant_and_each_grants_once()
    {
        var customer = (await OrderedAsync()).ToString();
        string[][] grants =
        [
            ["--amount", "10000", "--reason", "PO 123"],
            ["--amount", "10001", "--reason", "PO 123"],
            ["--amount", "10000", "--reason", "PO 124"],
            // Only trimmed: a reason in other letter case is another grant.
            ["--amount", "10000", "--reason", "po 123"],
        ];

        var first = new List<(int Exit, string Output, string Error)>();
        foreach (var grant in grants)
        {
            first.Add(await RunAsync(["credits", "grant", "--customer", customer, .. grant]));
        }

        var again = new List<(int Exit, string Output, string Error)>();
        foreach (var grant in grants)
        {
            again.Add(await RunAsync(["credits", "grant", "--customer", customer, .. grant]));
        }

        var json = await RunAsync("credits", "balance", "--customer", customer, "--output", "json");

        Assert.All(first, run => Assert.Equal((ExitCodes.Success, true), (run.Exit, run.Output.StartsWith("Granted", StringComparison.Ordinal))));
        Assert.All(again, run => Assert.Equal((ExitCodes.Success, true), (run.Exit, run.Output.StartsWith("Replay", StringComparison.Ordinal))));
        Assert.Equal(40001L, JsonNode.Parse(json.Output)!["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_second_identical_grant_on_purpose_takes_its_own_request_id()
    {
        var customer = (await OrderedAsync()).ToString();

        var derived = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "PO 123");
        var second = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "PO 123", "--request-id", "po-123-second", "--output", "json");
        var secondAgain = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "PO 123", "--request-id", "po-123-second");
        var derivedAgain = await RunAsync("credits", "grant", "--customer", customer, "--amount", "10000", "--reason", "PO 123");
        var json = await RunAsync("credits", "balance", "--customer", customer, "--output", "json");

        Assert.Contains("Granted 10000 credits", derived.Output);
        var secondJson = JsonNode.Parse(second.Output)!;
        Assert.Equal((true, "po-123-second", 20000L), (secondJson["granted"]!.GetValue<bool>(), secondJson["requestId"]!.GetValue<string>(), secondJson["balance"]!.GetValue<long>()));
        Assert.Contains("Replay: this grant was made before (request id po-123-second): nothing added. Balance 20000", secondAgain.Output);
        Assert.Contains("Replay", derivedAgain.Output);
        Assert.Equal(20000L, JsonNode.Parse(json.Output)!["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_grant_names_the_organization_it_funds()
    {
        var customer = await OrderedAsync("Acme Corp");

        var table = await RunAsync("credits", "grant", "--customer", customer.ToString(), "--amount", "500", "--reason", "pilot");
        var json = await RunAsync("credits", "grant", "--customer", customer.ToString(), "--amount", "25", "--reason", "goodwill", "--output", "json");

        Assert.Equal(ExitCodes.Success, table.Exit);
        Assert.Contains($"Granted 500 credits to Acme Corp ({customer}). Balance 500, available 500.", table.Output);
        Assert.Equal(ExitCodes.Success, json.Exit);
        Assert.Equal("Acme Corp", JsonNode.Parse(json.Output)!["organization"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_grant_to_a_customer_that_never_ordered_here_is_refused_and_grants_nothing()
    {
        // A typo, or a project UUID pasted for the organization's.
        var customer = Guid.NewGuid();

        var (exit, output, error) = await RunAsync("credits", "grant", "--customer", customer.ToString(), "--amount", "500", "--reason", "pilot");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Equal(string.Empty, output);
        var line = Assert.Single(error.Trim().Split('\n'));
        Assert.Contains($"no organization with UUID {customer} has ordered here", line);
        Assert.Contains("Waldur customer (organization) UUID", line);
        Assert.Contains("--new-customer", line);
        await _bed.StartAsync();
        Assert.False(await _bed.QueryAsync(db => db.LedgerEntries.AnyAsync(e => e.CustomerId == customer)));
        Assert.False(await _bed.QueryAsync(db => db.CreditAccounts.AnyAsync(a => a.CustomerId == customer)));
    }

    [Fact]
    public async Task New_customer_funds_an_organization_before_its_first_order_and_is_harmless_for_one_that_ordered()
    {
        var ahead = Guid.NewGuid();
        var other = Guid.NewGuid();
        var ordered = await OrderedAsync("Acme Corp");

        var funded = await RunAsync("credits", "grant", "--customer", ahead.ToString(), "--amount", "300", "--reason", "welcome", "--new-customer");
        // The operator vouched for this UUID with its first grant: its top-ups need no flag until it orders.
        var topUp = await RunAsync("credits", "grant", "--customer", ahead.ToString(), "--amount", "50", "--reason", "top-up");
        // That vouches for no other organization.
        var stranger = await RunAsync("credits", "grant", "--customer", other.ToString(), "--amount", "50", "--reason", "top-up");
        var known = await RunAsync("credits", "grant", "--customer", ordered.ToString(), "--amount", "40", "--reason", "pilot", "--new-customer");
        var balance = await RunAsync("credits", "balance", "--customer", ahead.ToString(), "--output", "json");

        Assert.Equal(ExitCodes.Success, funded.Exit);
        Assert.Contains($"Granted 300 credits to {ahead}. Balance 300", funded.Output);
        Assert.Equal(ExitCodes.Success, topUp.Exit);
        Assert.Contains($"Granted 50 credits to {ahead}. Balance 350", topUp.Output);
        Assert.Equal(ExitCodes.Error, stranger.Exit);
        Assert.Contains("--new-customer", stranger.Error);
        Assert.Equal(350L, JsonNode.Parse(balance.Output)!["balance"]!.GetValue<long>());
        Assert.Equal(ExitCodes.Success, known.Exit);
        Assert.Contains($"Granted 40 credits to Acme Corp ({ordered}). Balance 40", known.Output);
    }

    [Fact]
    public void The_derived_request_id_names_customer_amount_and_trimmed_reason()
    {
        var customer = Guid.NewGuid();
        var id = CreditsCommands.DerivedRequestId(customer, 10000, "PO 123");

        Assert.Equal(id, CreditsCommands.DerivedRequestId(customer, 10000, " PO 123\t"));
        Assert.StartsWith("grant:", id);
        Assert.InRange(id.Length, 1, CmpWaldurAdapter.Core.Credits.CreditRules.MaxRequestIdLength);
        // The amount is in the hash: a derived id never meets another amount, so it can never be a request id conflict.
        Assert.NotEqual(id, CreditsCommands.DerivedRequestId(customer, 10001, "PO 123"));
        Assert.NotEqual(id, CreditsCommands.DerivedRequestId(customer, 10000, "po 123"));
        Assert.NotEqual(id, CreditsCommands.DerivedRequestId(customer, 10000, "PO 1234"));
        Assert.NotEqual(id, CreditsCommands.DerivedRequestId(Guid.NewGuid(), 10000, "PO 123"));
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
    public async Task Balance_of_a_waldur_credit_limited_to_some_offerings_names_the_offerings_it_covers()
    {
        var second = WaldurFunded(secondSlug: "second-agent");
        var customer = Guid.NewGuid();
        // The offering this adapter does not serve cannot be spent on here: it is not listed.
        _bed.Waldur.AddCustomerCredit(customer, 1.00m, offerings: [_bed.Offering, second, Guid.NewGuid()]);

        var table = await RunAsync("credits", "balance", "--customer", customer.ToString());
        var json = await RunAsync("credits", "balance", "--customer", customer.ToString(), "--output", "json");

        Assert.Equal(ExitCodes.Success, table.Exit);
        Assert.Contains($"{customer}  100", table.Output);
        Assert.Contains("covers only these offerings", table.Output);
        Assert.Contains($"{_bed.Offering}  {TestCatalogue.Slug}  Studio Agent", table.Output);
        // Served, but not in the catalogue: no name.
        Assert.Contains($"{second}  second-agent  -", table.Output);
        Assert.Equal(ExitCodes.Success, json.Exit);
        var covered = JsonNode.Parse(json.Output)!["coveredOfferings"]!.AsArray()
            .Select(o => (o!["uuid"]!.GetValue<Guid>(), o["slug"]!.GetValue<string>(), o["name"]?.GetValue<string>()))
            .ToHashSet();
        Assert.Equal([(_bed.Offering, TestCatalogue.Slug, "Studio Agent"), (second, "second-agent", null)], covered);
    }

    [Fact]
    public async Task Balance_of_a_waldur_credit_limited_to_offerings_not_served_here_says_it_covers_none()
    {
        WaldurFunded();
        var customer = Guid.NewGuid();
        _bed.Waldur.AddCustomerCredit(customer, 5m, offerings: [Guid.NewGuid()]);

        var table = await RunAsync("credits", "balance", "--customer", customer.ToString());
        var json = await RunAsync("credits", "balance", "--customer", customer.ToString(), "--output", "json");

        Assert.Contains("covers none of the offerings this adapter serves", table.Output);
        Assert.Empty(JsonNode.Parse(json.Output)!["coveredOfferings"]!.AsArray());
    }

    [Theory]
    [InlineData("Ledger")]
    [InlineData("WaldurCustomerCredits")]
    public async Task Balance_of_an_unrestricted_credit_has_no_covered_offerings(string funding)
    {
        var customer = Guid.NewGuid();
        if (funding == "Ledger")
        {
            await RunAsync("credits", "grant", "--customer", customer.ToString(), "--amount", "100", "--reason", "pilot", "--new-customer");
            // The coverage an earlier Waldur-funded run left on the account: the ledger pays for every offering.
            await _bed.StartAsync();
            await _bed.QueryAsync(db => db.CreditAccounts.Where(a => a.CustomerId == customer)
                .ExecuteUpdateAsync(set => set.SetProperty(a => a.FundedOfferings, new List<Guid> { Guid.NewGuid() })));
        }
        else
        {
            WaldurFunded();
            _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        }

        var table = await RunAsync("credits", "balance", "--customer", customer.ToString());
        var json = await RunAsync("credits", "balance", "--customer", customer.ToString(), "--output", "json");

        // The plain output is the balance table alone, as before credits could be limited.
        Assert.Equal(2, table.Output.Trim().Split('\n').Length);
        Assert.Contains($"{customer}  100", table.Output);
        Assert.DoesNotContain("Limited", table.Output);
        var balance = JsonNode.Parse(json.Output)!.AsObject();
        Assert.True(balance.ContainsKey("coveredOfferings"));
        Assert.Null(balance["coveredOfferings"]);
    }

    [Theory]
    [InlineData(503)]
    [InlineData(401)]
    public async Task Balance_when_waldur_funding_cannot_be_read_exits_2_and_labels_the_last_known_value_stale(int status)
    {
        WaldurFunded();
        var customer = Guid.NewGuid();
        _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        var first = await RunAsync("credits", "balance", "--customer", customer.ToString());
        _bed.Waldur.Break("GET", "/api/customer-credits/", status);

        var table = await RunAsync("credits", "balance", "--customer", customer.ToString());
        var json = await RunAsync("credits", "balance", "--customer", customer.ToString(), "--output", "json");
        var never = await RunAsync("credits", "balance", "--customer", Guid.NewGuid().ToString());

        Assert.Equal(ExitCodes.Success, first.Exit);
        Assert.Equal(ExitCodes.Error, table.Exit);
        Assert.Contains($"the Waldur funding of organization {customer} could not be read", table.Error);
        Assert.Contains("Last known (STALE, read from Waldur at ", table.Error);
        Assert.Contains("balance 100, reserved 0, available 100", table.Error);
        // No table a script could take for today's balance.
        Assert.DoesNotContain(customer.ToString(), table.Output);
        Assert.Equal(ExitCodes.Error, json.Exit);
        var stale = JsonNode.Parse(json.Output)!.AsObject();
        Assert.True(stale["stale"]!.GetValue<bool>());
        Assert.False(string.IsNullOrEmpty(stale["fundingError"]!.GetValue<string>()));
        Assert.Equal(100, stale["balance"]!.GetValue<long>());
        Assert.NotNull(stale["fundedAt"]);
        Assert.Contains("could not be read", json.Error);
        Assert.Equal(ExitCodes.Error, never.Exit);
        Assert.Contains("no last known balance", never.Error);
    }

    /// <summary>
    /// Waldur slower than <c>Credits:FundingTimeout</c> is a read that failed: the command waits no longer than that and
    /// labels the last known value stale. Waldur holds the read (it answers only once the test ends), so the timeout, not
    /// an error answer, is what ends it.
    /// </summary>
    [Fact]
    public async Task Balance_when_waldur_answers_slower_than_the_funding_timeout_exits_2_and_labels_the_last_known_value_stale()
    {
        WaldurFunded();
        var customer = Guid.NewGuid();
        _bed.Waldur.AddCustomerCredit(customer, 1.00m);
        var first = await RunAsync("credits", "balance", "--customer", customer.ToString());
        _bed.Waldur.Hold("GET", "/api/customer-credits/");
        _bed.Settings["Credits:FundingTimeout"] = "00:00:00.5";
        // Waldur calls' own timeout (with its retries) far past the bound below: only the funding timeout ends the read.
        _bed.Settings["Waldur:AttemptTimeout"] = "00:05:00";

        // Bounded only so that a command that waits for Waldur regardless fails the test instead of hanging it.
        var table = await RunAsync("credits", "balance", "--customer", customer.ToString()).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(ExitCodes.Success, first.Exit);
        Assert.Equal(ExitCodes.Error, table.Exit);
        Assert.Contains($"the Waldur funding of organization {customer} could not be read", table.Error);
        Assert.Contains("Last known (STALE, read from Waldur at ", table.Error);
        Assert.Contains("balance 100, reserved 0, available 100", table.Error);
        Assert.Equal("", table.Output);
    }

    /// <summary>Waldur funds the balance (a credit is worth 0.01); with <paramref name="secondSlug"/>, a second served offering (returned).</summary>
    private Guid WaldurFunded(string? secondSlug = null)
    {
        _bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        _bed.Settings["Credits:CreditPrice"] = "0.01";
        // Each command is a cold start that reads Waldur once: on a busy machine that can take more than the default 2 s.
        _bed.Settings["Credits:FundingTimeout"] = "00:00:30";
        if (secondSlug is null)
        {
            return Guid.Empty;
        }

        var second = _bed.Waldur.AddOffering("Second Agent");
        _bed.Settings["Offerings:1:Uuid"] = second.ToString();
        _bed.Settings["Offerings:1:Slug"] = secondSlug;
        return second;
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

    [Fact]
    public async Task Usage_report_says_when_another_report_of_a_resource_kept_its_lease_and_exits_1()
    {
        await _bed.StartAsync();
        var subscription = await _bed.AddSubscriptionAsync();
        await _bed.Ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        await _bed.Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "m1");
        // The adapter's periodic run (another process) is reporting the resource.
        var leases = _bed.Services.GetRequiredService<DatabaseLeases>();
        var name = UsageReportLease.Name(subscription.ResourceUuid);
        var holding = await leases.TryAcquireWaitingAsync(name, TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None);
        Assert.NotNull(holding);

        var busy = await RunAsync("usage", "report");
        await leases.ReleaseAsync(name, holding);
        var sent = await RunAsync("usage", "report");

        Assert.Equal(ExitCodes.Unfinished, busy.Exit);
        Assert.Contains("1 total(s) not sent: another report of the same resource was under way", busy.Output);
        Assert.Contains("Busy", busy.Output);
        Assert.Equal(ExitCodes.Success, sent.Exit);
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
