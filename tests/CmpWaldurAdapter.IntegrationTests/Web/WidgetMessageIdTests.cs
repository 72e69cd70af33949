using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class WidgetMessageIdOnSqliteTests() : WidgetMessageIdTests(DatabaseProvider.Sqlite);

public sealed class WidgetMessageIdOnPostgresTests() : WidgetMessageIdTests(DatabaseProvider.Postgres);

/// <summary>
/// The widget sends each message's id with every send of it. A resend of a message answered before (its answer lost
/// on the way back) gets the stored answer: the agent does not run again and nothing more is charged. The id is the
/// visitor's own: another visitor or subscription sending it is answered afresh, never from the stored answer.
/// </summary>
public abstract class WidgetMessageIdTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private const string Here = "203.0.113.7";
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(provider, Start);
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_message_sent_again_with_its_id_gets_the_stored_answer_and_handoff_and_is_run_and_charged_once()
    {
        var (subscription, key) = await WidgetAsync(new JsonObject { ["agent_name"] = "Ada", ["escalate_after"] = 3 });
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key);
        var id = NewId();

        var first = await WidgetRequests.ChatAsync(client, token, Here, "Can I speak to a person?", id);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var answered = await first.Content.ReadAsStringAsync();
        Assert.Equal("Ada: you said Can I speak to a person?", JsonNode.Parse(answered)!["answer"]!.GetValue<string>());
        Assert.Equal(HandoffService.VisitorMessage, JsonNode.Parse(answered)!["handoff"]!.GetValue<string>());
        var balance = await BalanceAsync(subscription);

        // The answer was lost on its way: the Retry sends the message again, also after the token was renewed.
        var again = await WidgetRequests.ChatAsync(client, token, Here, "Can I speak to a person?", id);
        var renewed = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key, previous: token), Here, "Can I speak to a person?", id);

        foreach (var replay in new[] { again, renewed })
        {
            Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
            Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
            Assert.Equal(answered, await replay.Content.ReadAsStringAsync());
            Assert.Equal(WidgetRequests.Origin, replay.Headers.GetValues("Access-Control-Allow-Origin").Single());
        }

        Assert.Single(_bed.Agent.Runs);
        Assert.Equal(1, await ChargesAsync(subscription));
        Assert.Equal(balance, await BalanceAsync(subscription));
    }

    [Fact]
    public async Task The_same_id_with_another_message_is_refused_and_charges_nothing()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key);
        var id = NewId();
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id)).StatusCode);
        var balance = await BalanceAsync(subscription);

        var refused = await WidgetRequests.ChatAsync(client, token, Here, "Cancel my order", id);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, refused.StatusCode);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("idempotency_key_reused", error["code"]!.GetValue<string>());
        Assert.Equal("id", error["param"]!.GetValue<string>());
        Assert.Equal(["Where is my order?"], _bed.Agent.Runs.Select(r => r.Input));
        Assert.Equal(1, await ChargesAsync(subscription));
        Assert.Equal(balance, await BalanceAsync(subscription));
    }

    [Fact]
    public async Task A_send_that_was_not_answered_leaves_its_id_to_the_retry_which_is_charged_once()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key);
        var id = NewId();

        _bed.Agent.RunFails = true;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id)).StatusCode);
        Assert.Equal(0, await ChargesAsync(subscription));
        Assert.Equal(0, await _bed.QueryAsync(db => db.CreditReservations.CountAsync()));

        _bed.Agent.RunFails = false;
        var retried = await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id);
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.False(retried.Headers.Contains("Idempotent-Replayed"));
        Assert.Equal("Ada: you said Where is my order?", JsonNode.Parse(await retried.Content.ReadAsStringAsync())!["answer"]!.GetValue<string>());
        var again = await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id);
        Assert.Equal("true", again.Headers.GetValues("Idempotent-Replayed").Single());

        Assert.Single(_bed.Agent.Runs);
        Assert.Equal(1, await ChargesAsync(subscription));
        Assert.Equal(0, await _bed.QueryAsync(db => db.CreditReservations.CountAsync()));
    }

    [Fact]
    public async Task Another_visitor_or_subscription_sending_the_same_id_is_answered_afresh_never_from_the_stored_answer()
    {
        var (subscription, key) = await WidgetAsync();
        var (other, otherKey) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var id = NewId();
        var mine = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key), Here, "My order is 4711", id);
        Assert.Equal(HttpStatusCode.OK, mine.StatusCode);

        // A visitor of the same widget (the same text, or another), and one of another subscription's.
        var sameText = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key), Here, "My order is 4711", id);
        var otherText = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key), Here, "What is your order number?", id);
        var otherSubscription = await WidgetRequests.ChatAsync(client, await TokenAsync(client, otherKey), Here, "My order is 4711", id);

        foreach (var (response, input) in new[] { (sameText, "My order is 4711"), (otherText, "What is your order number?"), (otherSubscription, "My order is 4711") })
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.False(response.Headers.Contains("Idempotent-Replayed"));
            Assert.Equal($"Ada: you said {input}", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["answer"]!.GetValue<string>());
        }

        // Each ran in its own visitor's conversation and was charged to its own subscription.
        Assert.Equal(4, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());
        Assert.Equal(3, await ChargesAsync(subscription));
        Assert.Equal(1, await ChargesAsync(other));
    }

    [Fact]
    public async Task A_message_sent_again_while_its_first_send_is_still_answered_is_a_409_to_retry()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key);
        var id = NewId();
        _bed.Agent.RunGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id);
        await _bed.Agent.RunWaiting.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var busy = await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id);
        Assert.Equal(HttpStatusCode.Conflict, busy.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(5), busy.Headers.RetryAfter!.Delta);
        Assert.Equal("idempotency_key_in_use", JsonNode.Parse(await busy.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());

        _bed.Agent.RunGate.SetResult();
        var answered = await first;
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        var retried = await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?", id);
        Assert.Equal(await answered.Content.ReadAsStringAsync(), await retried.Content.ReadAsStringAsync());
        Assert.Single(_bed.Agent.Runs);
        Assert.Equal(1, await ChargesAsync(subscription));
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc123")]
    [InlineData("0123456789ABCDEF0123456789ABCDEF")]
    [InlineData("0123456789abcdef0123456789abcdeg")]
    [InlineData("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0")]
    public async Task A_message_id_that_is_not_32_to_64_lowercase_hex_digits_is_a_400(string id)
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();

        var refused = await WidgetRequests.ChatAsync(client, await TokenAsync(client, key), Here, "Where is my order?", id);

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("invalid_message_id", error["code"]!.GetValue<string>());
        Assert.Equal("The message id must be 32 to 64 lowercase hexadecimal characters.", error["message"]!.GetValue<string>());
        Assert.Empty(_bed.Agent.Runs);
        Assert.Equal(0, await ChargesAsync(subscription));
    }

    [Fact]
    public async Task A_message_without_an_id_as_older_widget_copies_send_is_answered_and_charged_each_time()
    {
        var (subscription, key) = await WidgetAsync();
        using var client = _bed.Server.CreateClient();
        var token = await TokenAsync(client, key);

        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await WidgetRequests.ChatAsync(client, token, Here, "Where is my order?")).StatusCode);

        Assert.Equal(2, _bed.Agent.Runs.Count);
        Assert.Equal(2, await ChargesAsync(subscription));
    }

    private static string NewId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>A subscription whose widget is allowed on <see cref="WidgetRequests.Origin"/>, and its publishable key.</summary>
    private async Task<(Guid Subscription, string Key)> WidgetAsync(JsonObject? configuration = null)
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100, configuration: configuration);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        return (subscription.Id, await _bed.PublishableKeyAsync(subscription.Id));
    }

    private static async Task<string> TokenAsync(HttpClient client, string key, string? previous = null)
    {
        var response = await WidgetRequests.SessionAsync(client, key, Here, previous);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(previous is not null, body["resumed"]!.GetValue<bool>());
        return body["token"]!.GetValue<string>();
    }

    private Task<int> ChargesAsync(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscriptionId && e.Kind == LedgerEntryKind.Charge));

    private async Task<long> BalanceAsync(Guid subscriptionId)
    {
        var customer = await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscriptionId).Select(s => s.CustomerId).SingleAsync());
        return (await _bed.Services.GetRequiredService<CreditLedger>().BalanceAsync(customer)).Available;
    }
}
