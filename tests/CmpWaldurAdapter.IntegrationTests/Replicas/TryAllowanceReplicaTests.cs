using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.IntegrationTests.Replicas;

/// <summary>
/// The try page's five demo messages are a promise to the visitor, not a per-replica figure: two adapter
/// instances on one PostgreSQL database count against the same allowance.
/// </summary>
public sealed class TryAllowanceReplicaTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(DatabaseProvider.Postgres);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_visitor_switching_between_two_replicas_gets_five_demo_messages_in_all()
    {
        var second = await _bed.StartReplicaAsync();
        var cookies = new CookieContainer();
        using var first = Browser(_bed.Url, cookies);
        using var other = Browser(second.Url, cookies);

        for (var sent = 1; sent <= 5; sent++)
        {
            var replica = sent % 2 == 1 ? first : other;
            var answer = await replica.PostAsJsonAsync("/try/research-agent/messages", new { message = $"hello {sent}" });
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            Assert.Equal(5 - sent, JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["remaining"]!.GetValue<int>());
        }

        foreach (var replica in new[] { first, other })
        {
            var refused = await replica.PostAsJsonAsync("/try/research-agent/messages", new { message = "one more" });
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Contains("Demo mode: <span id=\"remaining-count\">0</span>", await replica.GetStringAsync("/try/research-agent"));
        }

        Assert.Equal(5, _bed.Agent.DemoSessions.Count);
        Assert.Equal(5, await _bed.QueryAsync(db => db.Allowances.Where(a => a.Key.StartsWith("visitor|")).SumAsync(a => a.Used)));
    }

    [Fact]
    public async Task Racing_replicas_never_hand_out_more_than_five_demo_messages()
    {
        var second = await _bed.StartReplicaAsync();
        var cookies = new CookieContainer();
        using var first = Browser(_bed.Url, cookies);
        using var other = Browser(second.Url, cookies);
        await first.GetStringAsync("/try/research-agent"); // the visitor cookie, shared by both replicas

        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(i =>
            (i % 2 == 0 ? first : other).PostAsJsonAsync("/try/research-agent/messages", new { message = $"race {i}" })));

        Assert.Equal(5, answers.Count(a => a.StatusCode == HttpStatusCode.OK));
        Assert.Equal(7, answers.Count(a => a.StatusCode == HttpStatusCode.TooManyRequests));
    }

    private static HttpClient Browser(Uri url, CookieContainer cookies) =>
        new(new HttpClientHandler { CookieContainer = cookies, AllowAutoRedirect = false }) { BaseAddress = url };
}
