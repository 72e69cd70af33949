using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// The try page's limits beyond one visitor, on PostgreSQL: a refused demo message writes no counter (a flood of
/// requests without the visitor cookie cannot grow the table), an IPv6 /48 has an allowance of its own on top of its
/// /64s', and an offering's demo answers a bounded number of messages a day.
/// </summary>
public sealed class TryAllowanceTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task Requests_without_the_visitor_cookie_refused_after_the_address_limit_write_no_counters()
    {
        await using var bed = await StartAsync(("TryMessagesPerAddress", "3"));

        // A message the demo agent failed to answer is given back and leaves no counter either.
        bed.Agent.DemoFails = true;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await SendAsync(bed, "203.0.113.9")).StatusCode);
        Assert.Equal(0, await bed.QueryAsync(db => db.Allowances.CountAsync()));
        bed.Agent.DemoFails = false;

        for (var sent = 0; sent < 3; sent++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, "203.0.113.9")).StatusCode);
        }

        var counters = await bed.QueryAsync(db => db.Allowances.AsNoTracking().OrderBy(a => a.Key).Select(a => new { a.Key, a.Used }).ToListAsync());
        for (var sent = 0; sent < 40; sent++)
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, (await SendAsync(bed, "203.0.113.9")).StatusCode);
        }

        // The offering's day, the address and the three visitors that were answered: nothing for the forty refused.
        Assert.Equal(5, counters.Count);
        Assert.Equal(counters, await bed.QueryAsync(db => db.Allowances.AsNoTracking().OrderBy(a => a.Key).Select(a => new { a.Key, a.Used }).ToListAsync()));
    }

    [Fact]
    public async Task Many_64s_inside_one_48_share_the_48s_allowance()
    {
        // 2 per /64, times 3 per /48.
        await using var bed = await StartAsync(("TryMessagesPerAddress", "2"), ("TryIpv6SiteMultiple", "3"));

        for (var network = 1; network <= 6; network++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, $"2001:db8:7:{network:x}::1")).StatusCode);
        }

        var refused = await SendAsync(bed, "2001:db8:7:ff::1");
        await AssertDemoLimitAsync(refused, "You have used the free demo messages");
        Assert.False(await bed.QueryAsync(db => db.Allowances.AnyAsync(a => a.Key.Contains("2001:db8:7:ff::"))));

        // Another /48, and another offering in the same /48, have their own.
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, "2001:db8:8:1::1")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, "2001:db8:7:100::1", "code-assistant")).StatusCode);
    }

    [Fact]
    public async Task An_offerings_demo_answers_its_daily_cap_whatever_addresses_ask()
    {
        await using var bed = await StartAsync(("TryMessagesPerOfferingPerDay", "3"));

        for (var client = 1; client <= 3; client++)
        {
            Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, $"198.51.100.{client}")).StatusCode);
        }

        await AssertDemoLimitAsync(await SendAsync(bed, "198.51.100.4"), "Please come back tomorrow");
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, "198.51.100.4", "code-assistant")).StatusCode);
        Assert.Equal(3, bed.Agent.DemoSessions.Count(s => s.StartsWith("demo:research-agent:", StringComparison.Ordinal)));

        // The cap is per day (UTC).
        bed.Clock!.Advance(TimeSpan.FromHours(12));
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(bed, "198.51.100.4")).StatusCode);
    }

    private static async Task<BuyerWebTestBed> StartAsync(params (string Name, string Value)[] settings)
    {
        var bed = await BuyerWebTestBed.CreateAsync(DatabaseProvider.Postgres, Start);
        bed.Settings["Web:TrustForwardedHeaders"] = "true";
        foreach (var (name, value) in settings)
        {
            bed.Settings[$"Web:{name}"] = value;
        }

        await bed.StartAsync();
        return bed;
    }

    /// <summary>A demo message from a new visitor (no cookie) at <paramref name="address"/>.</summary>
    private static async Task<HttpResponseMessage> SendAsync(BuyerWebTestBed bed, string address, string offering = "research-agent")
    {
        using var visitor = new HttpClient(new HttpClientHandler { UseCookies = false, AllowAutoRedirect = false }) { BaseAddress = bed.Url };
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/try/{offering}/messages") { Content = JsonContent.Create(new { message = "hi" }) };
        request.Headers.Add("X-Forwarded-For", address);
        var response = await visitor.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private static async Task AssertDemoLimitAsync(HttpResponseMessage response, string message)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("demo_limit_reached", body["error"]!["code"]!.GetValue<string>());
        Assert.Contains(message, body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(0, body["remaining"]!.GetValue<int>());
    }
}
