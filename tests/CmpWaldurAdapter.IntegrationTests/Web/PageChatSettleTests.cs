using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class PageChatSettleOnSqliteTests() : PageChatSettleTests(DatabaseProvider.Sqlite);

public sealed class PageChatSettleOnPostgresTests() : PageChatSettleTests(DatabaseProvider.Postgres);

/// <summary>
/// A buyer page's answer goes out while its charge is written, as the API's does: the widget's at once (a resend
/// of it is still answered from what its first send stored, and charged once); the console's once its own charge
/// is written, since its reply shows the month's usage from the ledger. The ledger's settle waits at a gate here.
/// </summary>
public abstract class PageChatSettleTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string Here = "203.0.113.7";
    private readonly SettleGate _gate = new();
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(provider);
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        await _bed.StartAsync(services => services.Replace(ServiceDescriptor.Singleton<IChatCredits>(sp => new GatedChatCredits(ActivatorUtilities.CreateInstance<LedgerChatCredits>(sp), _gate))));
    }

    public async Task DisposeAsync()
    {
        _gate.Open();
        await _bed.DisposeAsync();
    }

    [Fact]
    public async Task A_widget_answer_is_sent_while_its_charge_is_written_and_a_resend_of_it_is_replayed_and_charged_once()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        using var client = _bed.Server.CreateClient();
        var session = await WidgetRequests.SessionAsync(client, await _bed.PublishableKeyAsync(subscription.Id), Here);
        var token = JsonNode.Parse(await session.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

        var first = await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        await _gate.Reached.WaitAsync(TimeSpan.FromSeconds(10));
        // The answer lost on its way: the Retry sends it again while its charge is still being written.
        var again = await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await again.Content.ReadAsStringAsync());
        Assert.False(_bed.Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync().IsCompleted);
        _gate.Open();
        Assert.Equal([2L], await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.SubscriptionId == subscription.Id && e.Kind == LedgerEntryKind.Charge).Select(e => e.Credits).ToListAsync()));
        Assert.Equal(0, await _bed.QueryAsync(db => db.CreditReservations.CountAsync()));
        Assert.Single(_bed.Agent.Runs);
    }

    [Fact]
    public async Task The_console_reply_counts_its_own_charge_although_the_charge_is_written_after_the_answer()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 3);
        using var browser = await ConsoleBrowser.OpenAsync(_bed.Url, await _bed.ConsoleLinkAsync(subscription.Id));
        await ConsoleBrowser.UseRunTabAsync(browser);
        // The charge is written a while after the answer is decided.
        _ = _gate.Reached.ContinueWith(async _ =>
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500));
            _gate.Open();
        }, TaskScheduler.Default);

        var response = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });

        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var body = JsonNode.Parse(text)!;
        Assert.Equal((2L, 2L, 1L), (body["charged"]!.GetValue<long>(), body["credits_used"]!.GetValue<long>(), body["balance"]!.GetValue<long>()));
    }
}
