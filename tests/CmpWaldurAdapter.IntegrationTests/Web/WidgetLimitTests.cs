using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class WidgetLimitOnSqliteTests() : WidgetLimitTests(DatabaseProvider.Sqlite)
{
    // Start-up validation, the same on either database: run once.
    [Theory]
    [InlineData("WidgetMessagesPerAddressPerMinute", "0")]
    [InlineData("WidgetMessagesPerAddressPerDay", "0")]
    [InlineData("WidgetSessionsPerAddressPerHour", "0")]
    [InlineData("ForwardedProxies", "0")]
    [InlineData("ForwardedProxies", "11")]
    public async Task An_address_setting_out_of_range_stops_the_adapter_at_start(string setting, string value)
    {
        await using var bed = await BuyerWebTestBed.CreateAsync();
        bed.Settings[$"Web:{setting}"] = value;

        var failure = await Assert.ThrowsAsync<Microsoft.Extensions.Options.OptionsValidationException>(() => bed.StartAsync());

        Assert.Contains(setting, failure.Message);
    }
}

/// <summary>The counters are conditional upserts whose SQL differs per database: the same limits on PostgreSQL.</summary>
public sealed class WidgetLimitOnPostgresTests() : WidgetLimitTests(DatabaseProvider.Postgres);

/// <summary>
/// The widget's limits that a publishable key cannot escape by minting visitor tokens: sessions and messages per
/// subscription and client address (IPv6 counted per /64, and a multiple of that per /48 site), the buyer's daily cap,
/// and the per-visitor burst limit.
/// A refused message is answered 429 with Retry-After, charges nothing and never reaches the agent.
/// </summary>
public abstract partial class WidgetLimitTests(DatabaseProvider provider) : IAsyncLifetime
{
    /// <summary>Noon UTC: fixed windows (minute, hour, day) start at whole minutes, hours and midnight.</summary>
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private const string Origin = WidgetRequests.Origin;
    private const string Here = "203.0.113.7";
    private const string Elsewhere = "198.51.100.20";
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(provider, now: Start);
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        _bed.Settings["Web:WidgetSessionsPerAddressPerHour"] = "3";
        _bed.Settings["Web:WidgetMessagesPerAddressPerMinute"] = "4";
        _bed.Settings["Web:WidgetMessagesPerAddressPerDay"] = "6";
        _bed.Settings["Web:WidgetMessagesPerMinute"] = "2";
        _bed.Settings["Web:TryMessagesPerAddress"] = "7";
        // An IPv6 /48 gets twice each per-address limit: 6 sessions an hour, 8 messages a minute and 12 a day.
        _bed.Settings["Web:TryIpv6SiteMultiple"] = "2";
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Minting_sessions_past_the_per_address_limit_is_refused_until_the_hour_ends_while_other_addresses_still_start()
    {
        var (_, key) = await WidgetAsync();
        var (_, otherKey) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();

        for (var started = 0; started < 3; started++)
        {
            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, Here)).StatusCode);
        }

        var refused = await WidgetRequests.SessionAsync(client, key, Here);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromHours(1), refused.Headers.RetryAfter!.Delta); // the clock hour started at noon
        Assert.Equal(Origin, refused.Headers.GetValues("Access-Control-Allow-Origin").Single()); // the page can read why
        var body = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!;
        Assert.Null(body["token"]);
        Assert.Equal("rate_limit_exceeded", body["error"]!["code"]!.GetValue<string>());
        Assert.Contains("try again in 60 minutes", body["error"]!["message"]!.GetValue<string>());

        // Another address, or another subscription's widget from this address, is counted apart.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, Elsewhere)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, otherKey, Here)).StatusCode);

        _bed.Clock!.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal(TimeSpan.FromMinutes(1), (await WidgetRequests.SessionAsync(client, key, Here)).Headers.RetryAfter!.Delta);
        _bed.Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, Here)).StatusCode);
    }

    [Fact]
    public async Task Many_visitor_tokens_from_one_address_share_its_message_limit_and_refused_messages_cost_nothing()
    {
        var (subscription, key) = await WidgetAsync(credits: 100);
        using var client = _bed.Server.CreateClient();
        var tokens = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            tokens.Add(await TokenAsync(client, key, Here));
        }

        // Two messages per token is within each visitor's burst limit; the address has four a minute in all.
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? refused = null;
        foreach (var token in tokens)
        {
            for (var i = 0; i < 2; i++)
            {
                var response = await WidgetRequests.ChatAsync(client, token, Here, $"message {statuses.Count}");
                statuses.Add(response.StatusCode);
                refused = response.StatusCode == HttpStatusCode.TooManyRequests ? response : refused;
            }
        }

        HttpStatusCode[] expected = [.. Enumerable.Repeat(HttpStatusCode.OK, 4), HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests];
        Assert.Equal(expected, statuses);
        Assert.Equal(TimeSpan.FromMinutes(1), refused!.Headers.RetryAfter!.Delta);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
        Assert.Contains("from your network", error["message"]!.GetValue<string>());

        // Four answers, four charges, nothing held: the refused ones never reached the agent or the ledger.
        Assert.Equal(4, _bed.Agent.Runs.Count);
        Assert.Equal(4, await Charges(subscription));
        Assert.Equal(0, await _bed.QueryAsync(db => db.CreditReservations.CountAsync()));
        var charged = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.SubscriptionId == subscription && e.Kind == LedgerEntryKind.Charge).SumAsync(e => e.Credits));
        Assert.Equal(100 - charged, (await _bed.Services.GetRequiredService<CreditLedger>().BalanceAsync(await CustomerOf(subscription))).Available);

        // Another address has its own four; the next minute this address has four again.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, Elsewhere), Elsewhere, "from elsewhere")).StatusCode);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[0], Here, "a minute later")).StatusCode);
        Assert.Equal(6, await Charges(subscription));
    }

    [Fact]
    public async Task The_per_visitor_limit_refuses_a_burst_from_one_token_before_it_counts_against_the_address()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var first = await TokenAsync(client, key, Here);
        var second = await TokenAsync(client, key, Here);

        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, first, Here, "one")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, first, Here, "two")).StatusCode);
        var refused = await WidgetRequests.ChatAsync(client, first, Here, "three");

        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromMinutes(1), refused.Headers.RetryAfter!.Delta);
        Assert.Equal("Too many messages; wait 60 s.", JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["message"]!.GetValue<string>());
        // The refused burst did not use the address's four: the other visitor still has two.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, second, Here, "one")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, second, Here, "two")).StatusCode);
        Assert.Equal(4, await Charges(subscription));

        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, first, Here, "three, later")).StatusCode);
    }

    [Fact]
    public async Task Messages_refused_as_bad_input_do_not_use_the_visitors_burst()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key, Here);

        Assert.Equal(HttpStatusCode.BadRequest, (await WidgetRequests.ChatAsync(client, token, Here, "   ")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await WidgetRequests.ChatAsync(client, token, Here, new string('x', 4001))).StatusCode);

        // The burst is two a minute: both still there for messages the agent can take.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, "one")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, "two")).StatusCode);
        Assert.Equal(2, await Charges(subscription));
    }

    [Fact]
    public async Task One_address_cannot_use_up_the_daily_cap_its_refused_messages_take_none_of_it_and_other_addresses_still_chat()
    {
        var (subscription, key) = await WidgetAsync();
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription, s => s.WidgetDailyMessageCap = 8, CancellationToken.None);
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key, Here);

        // Two a minute (within the visitor's burst and the address's minute) until the address's six for the day are used.
        for (var sent = 0; sent < 6; sent++)
        {
            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, $"message {sent}")).StatusCode);
            if (sent % 2 == 1)
            {
                _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
            }
        }

        // A new minute, but the address's day is used up: refused like its minute (rate_limit_exceeded), until midnight UTC.
        var refused = await WidgetRequests.ChatAsync(client, token, Here, "seventh");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromHours(12) - TimeSpan.FromMinutes(3), refused.Headers.RetryAfter!.Delta);
        Assert.Equal(Origin, refused.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("Too many messages from your network; wait 12 hours.", error["message"]!.GetValue<string>());

        // More tokens from the same address change nothing, and the refusals took none of the subscription's eight.
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, Here), Here, "new token")).StatusCode);
        Assert.Equal(6, await _bed.Services.GetRequiredService<WidgetLimits>().MessagesTodayAsync(subscription, CancellationToken.None));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, Elsewhere), Elsewhere, "seven")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.5"), "192.0.2.5", "eight")).StatusCode);
        var capped = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.6"), "192.0.2.6", "nine");
        Assert.Equal("daily_limit_reached", JsonNode.Parse(await capped.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(8, _bed.Agent.Runs.Count);
        Assert.Equal(8, await Charges(subscription));

        // The next day (UTC) the address has its six again.
        _bed.Clock!.Advance(TimeSpan.FromHours(12) - TimeSpan.FromMinutes(3));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, Here), Here, "tomorrow")).StatusCode);
    }

    [Fact]
    public async Task Messages_the_agent_did_not_answer_take_nothing_of_the_address_day_or_the_daily_cap()
    {
        var (subscription, key) = await WidgetAsync();
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription, s => s.WidgetDailyMessageCap = 6, CancellationToken.None);
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key, Here);

        // An outage: two messages unanswered. Their minute stays taken, so retries pace themselves: the visitor's two
        // are used (the address has two left).
        _bed.Agent.RunFails = true;
        for (var sent = 0; sent < 2; sent++)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await WidgetRequests.ChatAsync(client, token, Here, $"lost {sent}")).StatusCode);
        }

        var paced = await WidgetRequests.ChatAsync(client, token, Here, "retry at once");
        Assert.Equal(HttpStatusCode.TooManyRequests, paced.StatusCode);
        Assert.Equal("Too many messages; wait 60 s.", JsonNode.Parse(await paced.Content.ReadAsStringAsync())!["error"]!["message"]!.GetValue<string>());

        Assert.Equal(0, await _bed.Services.GetRequiredService<WidgetLimits>().MessagesTodayAsync(subscription, CancellationToken.None));

        // Back up: the address still has all six of its day, and the buyer's cap all six.
        _bed.Agent.RunFails = false;
        for (var sent = 0; sent < 6; sent++)
        {
            if (sent % 2 == 0)
            {
                _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
            }

            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, $"message {sent}")).StatusCode);
        }

        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.ChatAsync(client, token, Here, "seventh")).StatusCode);
        Assert.Equal(6, await _bed.Services.GetRequiredService<WidgetLimits>().MessagesTodayAsync(subscription, CancellationToken.None));
        Assert.Equal(6, await Charges(subscription));
    }

    [Fact]
    public async Task A_cap_set_during_the_day_counts_the_messages_answered_before_it()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        foreach (var (address, message) in new[] { (Here, "one"), (Elsewhere, "two") })
        {
            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, address), address, message)).StatusCode);
        }

        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription, s => s.WidgetDailyMessageCap = 2, CancellationToken.None);

        var capped = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.4"), "192.0.2.4", "three");
        Assert.Equal(HttpStatusCode.TooManyRequests, capped.StatusCode);
        Assert.Equal("daily_limit_reached", JsonNode.Parse(await capped.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(2, await Charges(subscription));
    }

    [Fact]
    public async Task The_daily_cap_set_in_the_console_stops_widget_messages_kindly_and_free_while_the_api_key_still_works()
    {
        var (subscription, key) = await WidgetAsync(credits: 4); // two messages' worth
        var secret = await _bed.SecretKeyAsync(subscription);
        using var browser = await ConsoleAsync(subscription);
        var antiforgery = AntiforgeryField().Match(await browser.GetStringAsync("/console?tab=widget")).Groups[1].Value;
        var saved = await browser.PostAsync("/console?handler=WidgetCap", Form(antiforgery, "3"));
        Assert.Equal(HttpStatusCode.OK, saved.StatusCode);
        Assert.Contains("at most 3 messages a day", await saved.Content.ReadAsStringAsync());
        Assert.Equal(3, await Cap(subscription));

        // Visitors from different addresses share the subscription's day. A message refused for want of credits
        // is not counted against it: nothing was charged.
        using var client = _bed.Server.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, Here), Here, "one")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, Elsewhere), Elsewhere, "two")).StatusCode);
        Assert.Equal(HttpStatusCode.PaymentRequired, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.1"), "192.0.2.1", "no credits")).StatusCode);
        await _bed.Services.GetRequiredService<CreditLedger>().GrantAsync(await CustomerOf(subscription), 10, "top-up");
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.2"), "192.0.2.2", "three")).StatusCode);

        var capped = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.3"), "192.0.2.3", "four");
        Assert.Equal(HttpStatusCode.TooManyRequests, capped.StatusCode);
        Assert.Equal(TimeSpan.FromHours(12), capped.Headers.RetryAfter!.Delta); // until midnight UTC
        var error = JsonNode.Parse(await capped.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("daily_limit_reached", error["code"]!.GetValue<string>());
        Assert.Equal("This assistant has answered all the messages it can for today. Please come back tomorrow.", error["message"]!.GetValue<string>());
        Assert.Equal(3, _bed.Agent.Runs.Count);
        Assert.Equal(3, await Charges(subscription));
        Assert.Contains("<span id=\"widget-today\">3</span>", await browser.GetStringAsync("/console?tab=widget"));

        // The cap is the widget's: the same subscription's API key is served and charged as before.
        using var api = _bed.Server.CreateClient();
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", secret);
        var completion = await api.PostAsJsonAsync("/v1/chat/completions", new { model = "customer-support-agent", messages = new[] { new { role = "user", content = "hello" } } });
        Assert.Equal(HttpStatusCode.OK, completion.StatusCode);
        Assert.Equal(4, await Charges(subscription));

        // The next day (UTC) the widget answers again; removing the cap (a new console session) removes it.
        _bed.Clock!.Advance(TimeSpan.FromHours(12));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "192.0.2.3"), "192.0.2.3", "tomorrow")).StatusCode);
        using var tomorrow = await ConsoleAsync(subscription);
        antiforgery = AntiforgeryField().Match(await tomorrow.GetStringAsync("/console?tab=widget")).Groups[1].Value;
        Assert.Equal(HttpStatusCode.OK, (await tomorrow.PostAsync("/console?handler=WidgetCap", Form(antiforgery, ""))).StatusCode);
        Assert.Null(await Cap(subscription));
    }

    [Fact]
    public async Task A_new_widget_starts_with_the_configured_daily_cap_which_the_buyer_can_remove_for_good()
    {
        var fresh = await _bed.AddSubscriptionAsync();
        Assert.Equal(1000, (await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(fresh.Id, CancellationToken.None)).WidgetDailyMessageCap);

        var (subscription, _) = await WidgetAsync();

        Assert.Equal(1000, await Cap(subscription));
        using var browser = await ConsoleAsync(subscription);
        var tab = await browser.GetStringAsync("/console?tab=widget");
        Assert.Matches("id=\"widget_cap\"[^>]*value=\"1000\"", tab);
        Assert.Equal(HttpStatusCode.OK, (await browser.PostAsync("/console?handler=WidgetCap", Form(AntiforgeryField().Match(tab).Groups[1].Value, ""))).StatusCode);
        Assert.Null(await Cap(subscription));
        await _bed.AllowDomainsAsync(subscription, "other.example.com");
        Assert.Null(await Cap(subscription));
    }

    [Fact]
    public async Task IPv6_addresses_of_one_64_network_share_the_try_and_widget_allowances_per_address()
    {
        // Try page: seven demo messages per address (Web:TryMessagesPerAddress), a fresh visitor cookie each time.
        for (var sent = 0; sent < 7; sent++)
        {
            Assert.Equal(HttpStatusCode.OK, await TryAsync($"2001:db8:1:2::{sent + 1:x}"));
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, await TryAsync("2001:db8:1:2:ffff:abcd:1234:9"));
        Assert.Equal(HttpStatusCode.OK, await TryAsync("2001:db8:2:2::1"));

        // Widget sessions: three per address, the whole /64 being one address.
        var (_, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "2001:db8:1:2::a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "2001:db8:1:2::b")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "2001:db8:1:2:8000::c")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.SessionAsync(client, key, "2001:db8:1:2::d")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "2001:db8:2:2::a")).StatusCode);

        // An IPv4 client seen through a dual-stack socket is the IPv4 address.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, Here)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "::ffff:" + Here)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, Here)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.SessionAsync(client, key, "::ffff:" + Here)).StatusCode);

        // Widget messages: four per address a minute, across the /64.
        var (subscription, messagesKey) = await WidgetAsync();
        var tokens = new[] { await TokenAsync(client, messagesKey, "2001:db8:5:6::1"), await TokenAsync(client, messagesKey, "2001:db8:5:6::2"), await TokenAsync(client, messagesKey, "2001:db8:5:6::3") };
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[0], "2001:db8:5:6::1", "a")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[0], "2001:db8:5:6::1:1", "b")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[1], "2001:db8:5:6::2", "c")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[1], "2001:db8:5:6:ffff::2", "d")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.ChatAsync(client, tokens[2], "2001:db8:5:6::3", "e")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[2], "2001:db8:6:6::3", "f")).StatusCode);
        Assert.Equal(5, await Charges(subscription));
    }

    [Fact]
    public async Task Sessions_from_new_64_networks_of_one_48_are_refused_once_its_allowance_is_used_while_other_sites_and_IPv4_addresses_still_start()
    {
        var (_, key) = await WidgetAsync();
        var (_, otherKey) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();

        // One session from each new /64: each has its own three, the /48 six in all.
        for (var network = 1; network <= 6; network++)
        {
            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, $"2001:db8:1:{network:x}::1")).StatusCode);
        }

        var refused = await WidgetRequests.SessionAsync(client, key, "2001:db8:1:7::1");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromHours(1), refused.Headers.RetryAfter!.Delta);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("Too many chat sessions were started from your network; try again in 60 minutes.", error["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.SessionAsync(client, key, "2001:db8:1:1::2")).StatusCode); // its /64 has two left

        // Another /48, or another subscription's widget from this /48, is counted apart.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "2001:db8:2:1::1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, otherKey, "2001:db8:1:8::1")).StatusCode);

        // IPv4 has no site: seven addresses, some IPv4-mapped (as IPv6 they would all lie in ::/48), each start one.
        for (var host = 1; host <= 7; host++)
        {
            var address = host % 2 == 0 ? $"192.0.2.{host}" : $"::ffff:192.0.2.{host}";
            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, address)).StatusCode);
        }

        _bed.Clock!.Advance(TimeSpan.FromHours(1));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.SessionAsync(client, key, "2001:db8:1:9::1")).StatusCode);
    }

    [Fact]
    public async Task Messages_from_new_64_networks_of_one_48_are_refused_once_its_minute_is_used_while_other_sites_still_chat()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var tokens = await VisitorTokensAsync(client, key, 5);

        // Each message from a new /64 (four a minute each), two per visitor token (their burst): the /48 has eight.
        for (var sent = 0; sent < 8; sent++)
        {
            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[sent / 2], $"2001:db8:1:{sent + 1:x}::1", $"message {sent}")).StatusCode);
        }

        var refused = await WidgetRequests.ChatAsync(client, tokens[4], "2001:db8:1:9::1", "ninth");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromMinutes(1), refused.Headers.RetryAfter!.Delta);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("Too many messages from your network; wait 60 s.", error["message"]!.GetValue<string>());
        Assert.Equal(8, _bed.Agent.Runs.Count);
        Assert.Equal(8, await Charges(subscription));

        // Another /48 still chats; the next minute this one has its eight again.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[4], "2001:db8:2:1::1", "from another site")).StatusCode);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[0], "2001:db8:1:a::1", "a minute later")).StatusCode);
        Assert.Equal(10, await Charges(subscription));
    }

    [Fact]
    public async Task Messages_from_new_64_networks_of_one_48_are_refused_once_its_day_is_used_and_unanswered_ones_take_none_of_it()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var tokens = await VisitorTokensAsync(client, key, 6);

        // An outage: two messages unanswered, which give back the /48's day (not its minute).
        _bed.Agent.RunFails = true;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await WidgetRequests.ChatAsync(client, tokens[0], "2001:db8:1:1::1", "lost")).StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await WidgetRequests.ChatAsync(client, tokens[0], "2001:db8:1:2::1", "lost too")).StatusCode);
        _bed.Agent.RunFails = false;

        // Back up: the /48 still has all twelve of its day. Six a minute (within its eight), one per token and new /64.
        for (var sent = 0; sent < 12; sent++)
        {
            if (sent % 6 == 0)
            {
                _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
            }

            Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[sent % 6], $"2001:db8:1:{sent + 3:x}::1", $"message {sent}")).StatusCode);
        }

        // A new minute, but the /48's day is used up: refused like an address's day, until midnight UTC.
        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        var refused = await WidgetRequests.ChatAsync(client, tokens[0], "2001:db8:1:f::1", "thirteenth");
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        Assert.Equal(TimeSpan.FromHours(12) - TimeSpan.FromMinutes(3), refused.Headers.RetryAfter!.Delta);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
        Assert.Equal("Too many messages from your network; wait 12 hours.", error["message"]!.GetValue<string>());
        Assert.Equal(12, await _bed.Services.GetRequiredService<WidgetLimits>().MessagesTodayAsync(subscription, CancellationToken.None));
        Assert.Equal(12, await Charges(subscription));

        // Another /48 and an IPv4 address still chat; the next day (UTC) the /48 has its twelve again.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[1], "2001:db8:2:1::1", "from another site")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, tokens[2], Here, "from IPv4")).StatusCode);
        _bed.Clock.Advance(TimeSpan.FromHours(12) - TimeSpan.FromMinutes(3));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, "2001:db8:1:10::1"), "2001:db8:1:10::1", "tomorrow")).StatusCode);
    }

    [Fact]
    public async Task A_use_given_back_after_its_window_ended_does_not_free_one_in_the_next()
    {
        var counters = _bed.Services.GetRequiredService<AllowanceCounters>();
        var day = new AllowanceRule("widget-day|give-back-test", 2, TimeSpan.FromDays(1), Fixed: true);
        _bed.Clock!.Advance(TimeSpan.FromHours(12) - TimeSpan.FromSeconds(1)); // 23:59:59
        var takenBy = _bed.Clock.GetUtcNow();
        Assert.Null(await counters.TakeAsync([day], CancellationToken.None));

        // The message fails only after midnight, when the new day's first message has started a new window.
        _bed.Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Null(await counters.TakeAsync([day], CancellationToken.None));
        await counters.GiveBackAsync([day.Key], takenBy);
        Assert.Equal(1, (await counters.UsedAsync([day], CancellationToken.None))[day.Key]);

        // Given back within its own window, a use is freed.
        await counters.GiveBackAsync([day.Key], _bed.Clock.GetUtcNow());
        Assert.Equal(0, (await counters.UsedAsync([day], CancellationToken.None))[day.Key]);
    }

    private async Task<HttpStatusCode> TryAsync(string address)
    {
        using var visitor = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = _bed.Url };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/try/research-agent/messages") { Content = JsonContent.Create(new { message = "hi" }) };
        request.Headers.Add("X-Forwarded-For", address);
        return (await visitor.SendAsync(request)).StatusCode;
    }

    /// <summary>A subscription whose widget is allowed on <see cref="Origin"/>, and its publishable key.</summary>
    private async Task<(Guid Subscription, string Key)> WidgetAsync(long credits = 100)
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: credits);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        return (subscription.Id, await _bed.PublishableKeyAsync(subscription.Id));
    }

    private async Task<HttpClient> ConsoleAsync(Guid subscriptionId)
    {
        var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync((await _bed.ConsoleLinkAsync(subscriptionId)).PathAndQuery)).StatusCode);
        return browser;
    }

    private static FormUrlEncodedContent Form(string antiforgery, string cap) => new([new("__RequestVerificationToken", antiforgery), new("cap", cap)]);

    private Task<int?> Cap(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.BuyerWebSettings.Where(s => s.SubscriptionId == subscriptionId).Select(s => s.WidgetDailyMessageCap).SingleAsync());

    private Task<int> Charges(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscriptionId && e.Kind == LedgerEntryKind.Charge));

    private Task<Guid> CustomerOf(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscriptionId).Select(s => s.CustomerId).SingleAsync());

    private static async Task<string> TokenAsync(HttpClient client, string key, string address)
    {
        var response = await WidgetRequests.SessionAsync(client, key, address);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
    }

    /// <summary>
    /// Tokens of <paramref name="count"/> visitors, each started from its own IPv4 address, so starting them takes
    /// nothing of an IPv6 /48's sessions.
    /// </summary>
    private static async Task<List<string>> VisitorTokensAsync(HttpClient client, string key, int count)
    {
        var tokens = new List<string>();
        for (var visitor = 1; visitor <= count; visitor++)
        {
            tokens.Add(await TokenAsync(client, key, $"192.0.2.{visitor}"));
        }

        return tokens;
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();
}
