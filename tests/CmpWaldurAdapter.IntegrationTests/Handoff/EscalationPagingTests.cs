using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Handoff;

public sealed class EscalationPagingOnSqliteTests() : EscalationPagingTests(DatabaseProvider.Sqlite);

public sealed class EscalationPagingOnPostgresTests() : EscalationPagingTests(DatabaseProvider.Postgres);

/// <summary>
/// <c>GET /v1/handoff/escalations</c> pages as OpenAI's lists do (limit, after, first_id, last_id, has_more), newest
/// first with ties in time ordered by id, on each database; cursors of other subscriptions tell nothing.
/// </summary>
public abstract class EscalationPagingTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Noon = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(provider);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Paging_walks_every_escalation_once_newest_first_even_when_escalated_in_the_same_instant()
    {
        var mine = await _bed.AddSubscriptionAsync();
        var theirs = await _bed.AddSubscriptionAsync();
        // Eight escalations, five of them in one instant so that pages of three split the tie; a conversation
        // never escalated and another subscription's escalation are never listed.
        var rows = new List<HandoffConversation>();
        foreach (var (minutes, index) in new[] { 0, 5, 5, 5, 5, 5, 9, 2 }.Select((m, i) => (m, i)))
        {
            rows.Add(await EscalateAsync(mine.Id, $"conv-{index}", Noon.AddMinutes(minutes)));
        }

        await EscalateAsync(mine.Id, "never-escalated", null);
        await EscalateAsync(theirs.Id, "theirs", Noon.AddMinutes(5));
        var expected = rows.OrderByDescending(r => r.EscalatedAt).ThenByDescending(r => r.Id).Select(r => Id(r.Id)).ToList();
        using var http = await ApiAsync(mine.Id);

        var (walked, pages) = await ListPages.WalkAsync(http, "/v1/handoff/escalations", limit: 3);

        Assert.Equal(expected, walked);
        Assert.Equal([3, 3, 2], pages.Select(p => p["data"]!.AsArray().Count));
        Assert.Equal([true, true, false], pages.Select(p => p["has_more"]!.GetValue<bool>()));
        var first = pages[0]["data"]![0]!;
        Assert.Equal("conv-6", first["conversation"]!.GetValue<string>());
        Assert.Equal(Noon.AddMinutes(9), first["escalated_at"]!.GetValue<DateTimeOffset>());

        // Without paging parameters: every item (up to 100) on one page, as before paging existed.
        var whole = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations"))!;
        Assert.Equal(expected, whole["data"]!.AsArray().Select(e => e!["id"]!.GetValue<string>()));
        Assert.False(whole["has_more"]!.GetValue<bool>());

        // A page that ends exactly at the last item says so.
        var exact = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations?limit=8"))!;
        Assert.Equal(8, exact["data"]!.AsArray().Count);
        Assert.False(exact["has_more"]!.GetValue<bool>());

        // An empty list keeps the shape, its ids null.
        using var other = await ApiAsync((await _bed.AddSubscriptionAsync()).Id);
        var empty = JsonNode.Parse(await other.GetStringAsync("/v1/handoff/escalations"))!.AsObject();
        Assert.Empty(empty["data"]!.AsArray());
        Assert.True(empty.ContainsKey("first_id") && empty["first_id"] is null);
        Assert.True(empty.ContainsKey("last_id") && empty["last_id"] is null);
        Assert.False(empty["has_more"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Bad_limits_and_cursors_are_refused_naming_the_parameter_and_another_subscriptions_cursor_tells_nothing()
    {
        var mine = await _bed.AddSubscriptionAsync();
        var theirs = await _bed.AddSubscriptionAsync();
        var own = await EscalateAsync(mine.Id, "mine", Noon);
        var notEscalated = await EscalateAsync(mine.Id, "calm", null);
        var theirEscalation = await EscalateAsync(theirs.Id, "theirs", Noon);
        using var http = await ApiAsync(mine.Id);

        foreach (var limit in new[] { "limit=0", "limit=101", "limit=-1", "limit=abc", "limit=1.5", "limit=", "limit=%201", "limit=99999999999", "limit=1&limit=2" })
        {
            await AssertRefusedAsync(http, limit, "limit", "invalid_limit");
        }

        var unknown = await AssertRefusedAsync(http, "after=" + Id(Guid.NewGuid()), "after", "invalid_cursor");
        foreach (var after in new[]
        {
            "after=" + Id(theirEscalation.Id),
            "after=" + Id(notEscalated.Id),
            "after=" + own.Id, // the bare row id, without the prefix
            "after=run_" + own.Id.ToString("N"),
            "after=esc_nothex",
            "after=",
            "after=" + Uri.EscapeDataString("esc_' OR 1=1;--"),
        })
        {
            // Byte for byte the answer to a made-up id: whether the item exists elsewhere is not told.
            Assert.Equal(unknown, await AssertRefusedAsync(http, after, "after", "invalid_cursor"));
        }

        // The caller's own cursor works, and the other subscription still sees only its own.
        var page = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations?after=" + Id(own.Id)))!;
        Assert.Empty(page["data"]!.AsArray());
        using var them = await ApiAsync(theirs.Id);
        var listed = JsonNode.Parse(await them.GetStringAsync("/v1/handoff/escalations"))!;
        Assert.Equal(Id(theirEscalation.Id), Assert.Single(listed["data"]!.AsArray())!["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_console_refuses_another_subscriptions_cursor_as_it_refuses_a_made_up_one()
    {
        var mine = await _bed.AddSubscriptionAsync();
        var theirs = await _bed.AddSubscriptionAsync();
        await EscalateAsync(mine.Id, "mine-1", Noon);
        var theirEscalation = await EscalateAsync(theirs.Id, "their-secret-conversation", Noon);
        using var browser = await ConsoleAsync(mine.Id);

        var madeUp = await browser.GetAsync("/console?tab=activity&escalations_after=" + Id(Guid.NewGuid()));
        var stolen = await browser.GetAsync("/console?tab=activity&escalations_after=" + Id(theirEscalation.Id));
        var malformed = await browser.GetAsync("/console?tab=activity&escalations_before=nonsense");

        foreach (var refused in new[] { madeUp, stolen, malformed })
        {
            var html = await refused.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("That page of the activity is not available; the newest items are shown.", html);
            Assert.Contains("mine-1", html);
            Assert.DoesNotContain("their-secret-conversation", html);
        }
    }

    [Fact]
    public async Task The_webhooks_link_opens_the_page_that_starts_with_its_escalation_however_many_came_after()
    {
        var mine = await _bed.AddSubscriptionAsync();
        var theirs = await _bed.AddSubscriptionAsync();
        await EscalateAsync(mine.Id, "older-one", Noon.AddMinutes(-1));
        var linked = await EscalateAsync(mine.Id, "the-linked-one", Noon);
        var twin = await EscalateAsync(mine.Id, "same-instant", Noon); // ties in time are ordered by id
        for (var i = 0; i < 60; i++)
        {
            await EscalateAsync(mine.Id, $"later-{i}", Noon.AddMinutes(1 + i));
        }

        var theirEscalation = await EscalateAsync(theirs.Id, "their-secret-conversation", Noon);
        using var browser = await ConsoleAsync(mine.Id);

        var html = await browser.GetStringAsync("/console?tab=activity&escalation=" + Id(linked.Id));

        var shown = System.Text.RegularExpressions.Regex.Matches(html, "<tr id=\"conversation-([^\"]+)\">").Select(m => m.Groups[1].Value).ToList();
        var expected = new[] { linked, twin }.OrderByDescending(r => r.Id).Select(r => r.Conversation).Append("older-one").ToList();
        Assert.Equal(expected.SkipWhile(c => c != "the-linked-one"), shown);
        Assert.Contains("escalations_before=" + Id(linked.Id), html); // Newer, back towards the 60 later ones
        Assert.Contains(">Newest</a>", html);

        // Someone else's escalation, or two positions at once, is refused as any bad cursor is.
        var stolen = await browser.GetAsync("/console?tab=activity&escalation=" + Id(theirEscalation.Id));
        var both = await browser.GetAsync($"/console?tab=activity&escalation={Id(linked.Id)}&escalations_after={Id(linked.Id)}");
        foreach (var refused in new[] { stolen, both })
        {
            var body = await refused.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Contains("later-59", body);
            Assert.DoesNotContain("their-secret-conversation", body);
        }
    }

    /// <summary>A conversation of the subscription, escalated at <paramref name="at"/> (or not, when null).</summary>
    private Task<HandoffConversation> EscalateAsync(Guid subscriptionId, string conversation, DateTimeOffset? at) => _bed.QueryAsync(async db =>
    {
        var row = new HandoffConversation
        {
            Id = Guid.NewGuid(),
            SubscriptionId = subscriptionId,
            Conversation = conversation,
            Transcript = "[]",
            EscalatedAt = at,
            EscalationReason = at is null ? null : "visitor_request",
            CreatedAt = Noon.AddDays(-1),
            UpdatedAt = Noon.AddDays(-1),
        };
        db.HandoffConversations.Add(row);
        await db.SaveChangesAsync();
        return row;
    });

    private static string Id(Guid row) => HandoffService.EscalationIdPrefix + row.ToString("N");

    /// <summary>Asserts a 400 in the API's error shape naming <paramref name="param"/>; returns the body.</summary>
    private static async Task<string> AssertRefusedAsync(HttpClient http, string query, string param, string code)
    {
        using var response = await http.GetAsync("/v1/handoff/escalations?" + query);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{query}: {(int)response.StatusCode} {body}");
        var error = JsonNode.Parse(body)!["error"]!;
        Assert.Equal(param, error["param"]!.GetValue<string>());
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        return body;
    }

    private async Task<HttpClient> ApiAsync(Guid subscriptionId)
    {
        var client = new HttpClient { BaseAddress = _bed.Url };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await _bed.SecretKeyAsync(subscriptionId));
        return client;
    }

    private async Task<HttpClient> ConsoleAsync(Guid subscriptionId)
    {
        var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync((await _bed.ConsoleLinkAsync(subscriptionId)).PathAndQuery)).StatusCode);
        return browser;
    }
}
