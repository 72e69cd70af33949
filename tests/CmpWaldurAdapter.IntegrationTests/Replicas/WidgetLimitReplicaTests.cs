using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Replicas;

/// <summary>
/// The widget's per-address limits guard the organization's credits, and a visitor's burst limit is one figure however
/// many replicas its messages reach: two adapter instances on one PostgreSQL database count sessions and messages of
/// an address, and messages of a visitor, against one allowance.
/// </summary>
public sealed class WidgetLimitReplicaTests : IAsyncLifetime
{
    private const string Here = "203.0.113.7";
    private const string Elsewhere = "198.51.100.20";
    private BuyerWebTestBed _bed = null!;
    private HttpClient _first = null!;
    private HttpClient _second = null!;

    public async Task InitializeAsync()
    {
        // A fixed clock: the minute and hour windows cannot turn over during a test.
        _bed = await BuyerWebTestBed.CreateAsync(DatabaseProvider.Postgres, new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero));
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        _bed.Settings["Web:WidgetSessionsPerAddressPerHour"] = "3";
        _bed.Settings["Web:WidgetMessagesPerAddressPerMinute"] = "4";
        _bed.Settings["Web:WidgetMessagesPerAddressPerDay"] = "6";
        _bed.Settings["Web:WidgetMessagesPerMinute"] = "2";
        await _bed.StartAsync();
        _first = new HttpClient { BaseAddress = _bed.Url };
        _second = new HttpClient { BaseAddress = (await _bed.StartReplicaAsync()).Url };
    }

    public async Task DisposeAsync()
    {
        _first.Dispose();
        _second.Dispose();
        await _bed.DisposeAsync();
    }

    [Fact]
    public async Task Sessions_and_messages_of_one_address_alternating_between_two_replicas_are_counted_once()
    {
        var (subscription, key) = await WidgetAsync();

        var sessions = new List<HttpResponseMessage>();
        for (var i = 0; i < 4; i++)
        {
            sessions.Add(await WidgetRequests.SessionAsync(i % 2 == 0 ? _first : _second, key, Here));
        }

        Assert.Equal(new[] { HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests }, sessions.Select(s => s.StatusCode).ToArray());
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.SessionAsync(_first, key, Here)).StatusCode);
        Assert.NotNull(sessions[3].Headers.RetryAfter);

        // Three visitor tokens, two messages each (the visitor's burst), alternating between the replicas: four for the
        // address in all, not four per replica.
        var tokens = new[] { await TokenOf(sessions[0]), await TokenOf(sessions[1]), await TokenOf(sessions[2]) };
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            statuses.Add((await WidgetRequests.ChatAsync(i % 2 == 0 ? _first : _second, tokens[i / 2], Here, $"message {i}")).StatusCode);
        }

        Assert.Equal(4, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.All(statuses.Skip(4), s => Assert.Equal(HttpStatusCode.TooManyRequests, s));
        Assert.Equal(4, await Charges(subscription));
    }

    [Fact]
    public async Task An_addresss_messages_of_the_day_alternating_between_two_replicas_are_counted_once()
    {
        var (subscription, key) = await WidgetAsync();
        var tokens = new[] { await TokenAsync(key, Here), await TokenAsync(key, Here) };

        // Four a minute (two per visitor) for two minutes, alternating: the address's six for the day in all, not six per replica.
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            statuses.Add((await WidgetRequests.ChatAsync(i % 2 == 0 ? _first : _second, tokens[i / 2 % 2], Here, $"message {i}")).StatusCode);
            if (i == 3)
            {
                _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
            }
        }

        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 6), HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal(6, await Charges(subscription));
        Assert.Equal(6, await _bed.QueryAsync(db => db.Allowances.Where(a => a.Key == $"widget-day|{subscription:N}").Select(a => a.Used).SingleAsync()));
    }

    [Fact]
    public async Task Racing_replicas_never_start_more_sessions_for_an_address_than_its_limit()
    {
        var (_, key) = await WidgetAsync();

        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => WidgetRequests.SessionAsync(i % 2 == 0 ? _first : _second, key, "2001:db8:7:7::" + (i + 1))));

        Assert.Equal(3, answers.Count(a => a.StatusCode == HttpStatusCode.OK));
        Assert.Equal(9, answers.Count(a => a.StatusCode == HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task One_visitors_messages_alternating_between_two_replicas_get_the_minutes_two_in_all()
    {
        var (subscription, key) = await WidgetAsync();
        var token = await TokenAsync(key, Here);

        var answers = new List<HttpResponseMessage>();
        for (var i = 0; i < 4; i++)
        {
            answers.Add(await WidgetRequests.ChatAsync(i % 2 == 0 ? _first : _second, token, Here, $"message {i}"));
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], answers.Select(a => a.StatusCode));
        foreach (var refused in answers.Skip(2))
        {
            Assert.Equal(TimeSpan.FromMinutes(1), refused.Headers.RetryAfter!.Delta);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("rate_limit_exceeded", error["code"]!.GetValue<string>());
            Assert.Equal("Too many messages; wait 60 s.", error["message"]!.GetValue<string>());
        }

        // Another visitor is still answered; the next minute this visitor has two again, on either replica.
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(_second, await TokenAsync(key, Elsewhere), Elsewhere, "another visitor")).StatusCode);
        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(_second, token, Here, "a minute later")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(_first, token, Here, "and again")).StatusCode);
        var oneTooMany = await WidgetRequests.ChatAsync(_second, token, Here, "one too many");
        Assert.Equal("Too many messages; wait 60 s.", JsonNode.Parse(await oneTooMany.Content.ReadAsStringAsync())!["error"]!["message"]!.GetValue<string>());
        Assert.Equal(5, await Charges(subscription));
    }

    [Fact]
    public async Task A_visitors_burst_on_one_replica_leaves_nothing_of_its_minute_on_the_other()
    {
        var (subscription, key) = await WidgetAsync();
        var token = await TokenAsync(key, Here);

        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(_first, token, Here, "one")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(_first, token, Here, "two")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.ChatAsync(_first, token, Here, "on the same replica")).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.ChatAsync(_second, token, Here, "on the other replica")).StatusCode);
        Assert.Equal(2, await Charges(subscription));
    }

    [Fact]
    public async Task Racing_replicas_never_answer_one_visitor_more_messages_a_minute_than_its_limit()
    {
        var (subscription, key) = await WidgetAsync();
        var token = await TokenAsync(key, Here);

        var answers = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => WidgetRequests.ChatAsync(i % 2 == 0 ? _first : _second, token, Here, $"message {i}")));

        Assert.Equal(2, answers.Count(a => a.StatusCode == HttpStatusCode.OK));
        Assert.Equal(8, answers.Count(a => a.StatusCode == HttpStatusCode.TooManyRequests));
        Assert.Equal(2, await Charges(subscription));
    }

    private async Task<(Guid Subscription, string Key)> WidgetAsync()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        return (subscription.Id, await _bed.PublishableKeyAsync(subscription.Id));
    }

    private async Task<string> TokenAsync(string key, string address)
    {
        var session = await WidgetRequests.SessionAsync(_first, key, address);
        Assert.Equal(HttpStatusCode.OK, session.StatusCode);
        return await TokenOf(session);
    }

    private static async Task<string> TokenOf(HttpResponseMessage session) =>
        JsonNode.Parse(await session.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();

    private Task<int> Charges(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscriptionId && e.Kind == LedgerEntryKind.Charge));
}
