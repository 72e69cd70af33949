using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Replicas;

/// <summary>
/// The widget's per-address limits guard the organization's credits, so they are not per-replica figures: two
/// adapter instances on one PostgreSQL database count sessions and messages of an address against one allowance.
/// </summary>
public sealed class WidgetLimitReplicaTests : IAsyncLifetime
{
    private const string Origin = WidgetRequests.Origin;
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
            sessions.Add(await WidgetRequests.SessionAsync(i % 2 == 0 ? _first : _second, key, "203.0.113.7"));
        }

        Assert.Equal(new[] { HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests }, sessions.Select(s => s.StatusCode).ToArray());
        Assert.Equal(HttpStatusCode.TooManyRequests, (await WidgetRequests.SessionAsync(_first, key, "203.0.113.7")).StatusCode);
        Assert.NotNull(sessions[3].Headers.RetryAfter);

        // One visitor token, its messages alternating: four for the address in all, not four per replica.
        var token = JsonNode.Parse(await sessions[0].Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++)
        {
            statuses.Add((await WidgetRequests.ChatAsync(i % 2 == 0 ? _first : _second, token, "203.0.113.7", $"message {i}")).StatusCode);
        }

        Assert.Equal(4, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.All(statuses.Skip(4), s => Assert.Equal(HttpStatusCode.TooManyRequests, s));
        Assert.Equal(4, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscription && e.Kind == LedgerEntryKind.Charge)));
    }

    [Fact]
    public async Task An_addresss_messages_of_the_day_alternating_between_two_replicas_are_counted_once()
    {
        var (subscription, key) = await WidgetAsync();
        var token = JsonNode.Parse(await (await WidgetRequests.SessionAsync(_first, key, "203.0.113.7")).Content.ReadAsStringAsync())!["token"]!.GetValue<string>();

        // Four a minute for two minutes, alternating: the address's six for the day in all, not six per replica.
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            statuses.Add((await WidgetRequests.ChatAsync(i % 2 == 0 ? _first : _second, token, "203.0.113.7", $"message {i}")).StatusCode);
            if (i == 3)
            {
                _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
            }
        }

        Assert.Equal([.. Enumerable.Repeat(HttpStatusCode.OK, 6), HttpStatusCode.TooManyRequests, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal(6, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscription && e.Kind == LedgerEntryKind.Charge)));
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

    private async Task<(Guid Subscription, string Key)> WidgetAsync()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        return (subscription.Id, await _bed.PublishableKeyAsync(subscription.Id));
    }
}
