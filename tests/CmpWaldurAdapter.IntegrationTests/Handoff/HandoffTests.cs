using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using WireMock;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace CmpWaldurAdapter.IntegrationTests.Handoff;

/// <summary>Human handoff: the N-th unanswered question escalates once, the signed webhook is delivered from the outbox, retried until it is.</summary>
public sealed class HandoffTests : IAsyncLifetime
{
    private const string CannotAnswer = "I'm sorry, I don't know the answer to that.";

    private ChatTestBed _bed = null!;
    private WireMockServer _receiver = null!;

    public async Task InitializeAsync()
    {
        _receiver = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"], StartAdminInterface = false });
        // The tests deliver the outbox themselves; the scheduled job stays out of the way.
        _bed = await ChatTestBed.StartAsync(settings =>
        {
            settings["Handoff:DeliveryInterval"] = "01:00:00";
            settings["Handoff:FirstRetryDelay"] = "00:00:00.200";
        });
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _receiver.Stop();
    }

    [Fact]
    public async Task The_third_unanswered_question_escalates_exactly_once_with_a_signed_webhook_and_no_charge()
    {
        var me = await _bed.SubscribeAsync(credits: 100); // escalate_after = 3
        _receiver.Given(Request.Create().WithPath("/hooks/handoff").UsingPost()).RespondWith(Response.Create().WithStatusCode(204));
        using var http = _bed.Http(me.Key);
        var secret = await SetWebhookAsync(http, "/hooks/handoff");
        await AddDocumentAsync(me); // every question retrieves a passage: only the agent's words decide

        _bed.Tenants.Langflow.ScriptNextAnswers(CannotAnswer, "Your parcel left the warehouse today.", CannotAnswer, CannotAnswer, CannotAnswer);
        var answers = new List<(JsonNode Body, HttpResponseMessage Response)>();
        foreach (var question in new[] { "Do you ship to Mars?", "Where is my parcel?", "Can I pay in gold?", "Is there a discount for cats?", "And for dogs?" })
        {
            var response = await AskAsync(http, "conv-1", question);
            answers.Add((JsonNode.Parse(await response.Content.ReadAsStringAsync())!, response));
        }

        // Answers 1, 3 and 4 were unanswered: the fourth message reached N = 3.
        Assert.All(answers.Take(3), a => Assert.Null(a.Body["handoff"]));
        Assert.All(answers.Take(3), a => Assert.False(a.Response.Headers.Contains(HandoffService.HandoffHeader)));
        Assert.All(answers.Skip(3), a => Assert.Equal("escalated", a.Body["handoff"]!["status"]!.GetValue<string>()));
        Assert.Equal("unanswered_questions", answers[3].Body["handoff"]!["reason"]!.GetValue<string>());
        Assert.Equal(HandoffService.VisitorMessage, answers[3].Body["handoff"]!["message"]!.GetValue<string>());
        Assert.Equal("escalated", answers[3].Response.Headers.GetValues(HandoffService.HandoffHeader).Single());

        // Five messages at 2 credits: the escalation itself costs nothing (the document is charged once parsed, on its own).
        var chatCharges = await _bed.Tenants.QueryAsync(db => db.LedgerEntries.AsNoTracking()
            .Where(e => e.CustomerId == me.Customer && e.Kind == CmpWaldurAdapter.Core.Credits.LedgerEntryKind.Charge && e.ActionClass == CmpWaldurAdapter.Core.Catalogue.ActionClass.ChatMessage)
            .Select(e => e.Credits).ToListAsync());
        Assert.Equal(5, chatCharges.Count);
        Assert.Equal(10, chatCharges.Sum());
        Assert.Equal(5, _bed.Tenants.Ragflow.Retrievals.Count);
        Assert.Equal(1, await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.CountAsync()));

        Assert.Equal(1, await Sender().DeliverDueAsync(CancellationToken.None));
        Assert.Equal(0, await Sender().DeliverDueAsync(CancellationToken.None));
        var hook = Assert.Single(_receiver.LogEntries).RequestMessage;
        var body = hook.Body!;
        var signature = hook.Headers![HandoffWebhookSender.SignatureHeader].Single();
        var timestamp = long.Parse(signature.Split(',')[0]["t=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(HandoffWebhookSender.Sign(secret, timestamp, body), signature);
        Assert.NotEqual(HandoffWebhookSender.Sign(secret + "x", timestamp, body), signature);
        var escalation = JsonNode.Parse(body)!;
        Assert.Equal("conversation.escalated", escalation["type"]!.GetValue<string>());
        Assert.Equal("conv-1", escalation["conversation"]!.GetValue<string>());
        Assert.Equal(me.Resource, escalation["subscription"]!.GetValue<Guid>());
        Assert.Equal(3, escalation["unanswered"]!.GetValue<int>());
        await AssertLinkOpensTheRowAsync(me, escalation["link"]!.GetValue<string>(), "conv-1");
        var transcript = escalation["transcript"]!.AsArray();
        Assert.Equal(8, transcript.Count);
        Assert.Equal("Do you ship to Mars?", transcript[0]!["content"]!.GetValue<string>());
        Assert.Equal(CannotAnswer, transcript[7]!["content"]!.GetValue<string>());

        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations"))!["data"]!.AsArray();
        var conversation = Assert.Single(listed)!;
        Assert.Equal("conv-1", conversation["conversation"]!.GetValue<string>());
        Assert.True(conversation["webhook_delivered"]!.GetValue<bool>());
        Assert.Equal(10, conversation["transcript"]!.AsArray().Count);
    }

    [Fact]
    public async Task Questions_whose_retrieval_found_nothing_count_as_unanswered_even_when_the_agent_sounds_sure()
    {
        var me = await _bed.SubscribeAsync(credits: 100); // escalate_after = 3; its knowledge base finds nothing for these questions
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.ScriptNextAnswers("Yes, we ship to Mars every Tuesday.", "Gold is welcome.");

        var first = JsonNode.Parse(await (await AskAsync(http, "conv-empty", "Do you ship to Mars?")).Content.ReadAsStringAsync())!;
        var second = JsonNode.Parse(await (await AskAsync(http, "conv-empty", "Can I pay in gold?")).Content.ReadAsStringAsync())!;
        var third = await StreamAsync(http, "conv-empty", "Is there a discount for cats?");

        Assert.Equal("Yes, we ship to Mars every Tuesday.", first["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Null(first["handoff"]);
        Assert.Null(second["handoff"]);
        var final = Assert.Single(third, c => c["handoff"] is not null);
        Assert.Equal("unanswered_questions", final["handoff"]!["reason"]!.GetValue<string>());
        Assert.All(_bed.Tenants.Ragflow.Retrievals, r => Assert.Equal([me.Subscription.RagflowDatasetId!], r.DatasetIds));
        Assert.Equal(3, _bed.Tenants.Ragflow.Retrievals.Count);
        var escalated = await _bed.Tenants.QueryAsync(db => db.HandoffConversations.AsNoTracking().SingleAsync(c => c.Conversation == "conv-empty"));
        Assert.Equal(3, escalated.Unanswered);
    }

    [Fact]
    public async Task Confident_answers_with_retrieved_passages_never_escalate()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);
        await AddDocumentAsync(me);

        var answers = new List<JsonNode>();
        foreach (var question in new[] { "How do refunds work?", "How long do refunds take?", "Who pays the refund?", "Can I get a refund in cash?" })
        {
            answers.Add(JsonNode.Parse(await (await AskAsync(http, "conv-found", question)).Content.ReadAsStringAsync())!);
        }

        Assert.All(answers, a => Assert.Null(a["handoff"]));
        Assert.Equal(4, _bed.Tenants.Ragflow.Retrievals.Count);
        var recorded = await _bed.Tenants.QueryAsync(db => db.HandoffConversations.AsNoTracking().SingleAsync(c => c.Conversation == "conv-found"));
        Assert.Equal(0, recorded.Unanswered);
        Assert.Null(recorded.EscalatedAt);
    }

    [Fact]
    public async Task A_visitor_asking_for_a_person_is_escalated_at_once_and_other_conversations_are_not()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);

        var other = JsonNode.Parse(await (await AskAsync(http, "conv-a", "Where is my parcel?")).Content.ReadAsStringAsync())!;
        var asked = JsonNode.Parse(await (await AskAsync(http, "conv-b", "Can I talk to a human please?")).Content.ReadAsStringAsync())!;

        Assert.Null(other["handoff"]);
        Assert.Equal("visitor_request", asked["handoff"]!["reason"]!.GetValue<string>());
        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations"))!["data"]!.AsArray();
        Assert.Equal("conv-b", Assert.Single(listed)!["conversation"]!.GetValue<string>());
        // No webhook configured: escalated and listed, nothing to deliver.
        Assert.Equal(0, await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.CountAsync()));
    }

    [Fact]
    public async Task A_receiver_that_is_down_gets_the_escalation_later_and_nothing_is_lost()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);
        var secret = await SetWebhookAsync(http, "/hooks/down");
        _receiver.Given(Request.Create().WithPath("/hooks/down").UsingPost()).InScenario("down").WillSetStateTo("refused-once")
            .RespondWith(Response.Create().WithStatusCode(503));
        _receiver.Given(Request.Create().WithPath("/hooks/down").UsingPost()).InScenario("down").WhenStateIs("refused-once").WillSetStateTo("still-down")
            .RespondWith(Response.Create().WithStatusCode(500));
        _receiver.Given(Request.Create().WithPath("/hooks/down").UsingPost()).InScenario("down").WhenStateIs("still-down")
            .RespondWith(Response.Create().WithStatusCode(200));

        await AskAsync(http, "conv-down", "I want to speak to a person");

        Assert.Equal(0, await Sender().DeliverDueAsync(CancellationToken.None));
        var failed = await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().SingleAsync());
        Assert.Equal(1, failed.Attempts);
        Assert.Null(failed.DeliveredAt);
        Assert.Contains("503", failed.LastError);
        // Not due again before its backoff.
        Assert.Equal(0, await Sender().DeliverDueAsync(CancellationToken.None));
        Assert.Single(_receiver.LogEntries);

        await Task.Delay(TimeSpan.FromMilliseconds(300));
        Assert.Equal(0, await Sender().DeliverDueAsync(CancellationToken.None));
        await Task.Delay(TimeSpan.FromMilliseconds(600)); // the second delay doubled
        Assert.Equal(1, await Sender().DeliverDueAsync(CancellationToken.None));

        var delivered = await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().SingleAsync());
        Assert.Equal(3, delivered.Attempts);
        Assert.NotNull(delivered.DeliveredAt);
        var bodies = _receiver.LogEntries.Select(e => e.RequestMessage.Body).Distinct().ToList();
        Assert.Single(bodies); // the same event each time, freshly signed
        var last = _receiver.LogEntries.ToList()[^1].RequestMessage;
        var signature = last.Headers![HandoffWebhookSender.SignatureHeader].Single();
        var timestamp = long.Parse(signature.Split(',')[0]["t=".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(HandoffWebhookSender.Sign(secret, timestamp, last.Body!), signature);
    }

    [Fact]
    public async Task A_receiver_that_redirects_is_not_followed_and_the_delivery_stays_due()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);
        await SetWebhookAsync(http, "/hooks/moved");
        _receiver.Given(Request.Create().WithPath("/hooks/moved").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(307).WithHeader("Location", $"{_receiver.Url}/hooks/elsewhere"));

        await AskAsync(http, "conv-moved", "I want to speak to a person");
        Assert.Equal(0, await Sender().DeliverDueAsync(CancellationToken.None));

        // A redirect could lead the POST anywhere, past the address check: it counts as a failed attempt.
        Assert.Equal("/hooks/moved", Assert.Single(_receiver.LogEntries).RequestMessage.Path);
        var delivery = await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().SingleAsync());
        Assert.Null(delivery.DeliveredAt);
        Assert.Contains("307", delivery.LastError);
    }

    [Fact]
    public async Task The_webhook_secret_is_shown_once_and_rotation_replaces_it()
    {
        var me = await _bed.SubscribeAsync();
        using var http = _bed.Http(me.Key);

        var first = await SetWebhookAsync(http, "/hooks/a");
        var again = JsonNode.Parse(await (await http.PutAsync("/v1/handoff/webhook", ChatTestBed.Json($$"""{"url": "{{_receiver.Url}}/hooks/b"}"""))).Content.ReadAsStringAsync())!;
        var shown = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/webhook"))!;
        var rotated = JsonNode.Parse(await (await http.PostAsync("/v1/handoff/webhook/secret", null)).Content.ReadAsStringAsync())!;
        var bad = await http.PutAsync("/v1/handoff/webhook", ChatTestBed.Json("""{"url": "ftp://example.com/x"}"""));

        Assert.StartsWith("whsec_", first);
        Assert.Null(again["secret"]);
        Assert.EndsWith("/hooks/b", shown["url"]!.GetValue<string>());
        Assert.Null(shown["secret"]);
        Assert.StartsWith("whsec_", rotated["secret"]!.GetValue<string>());
        Assert.NotEqual(first, rotated["secret"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        var stored = await _bed.Tenants.QueryAsync(db => db.HandoffWebhooks.AsNoTracking().SingleAsync());
        Assert.DoesNotContain(rotated["secret"]!.GetValue<string>(), stored.SecretCipher);
    }

    [Fact]
    public async Task The_webhook_link_opens_the_escalated_row_in_activity_for_its_own_subscription_only()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        var someoneElse = await _bed.SubscribeAsync(credits: 100);
        _receiver.Given(Request.Create().WithPath("/hooks/link").UsingPost()).RespondWith(Response.Create().WithStatusCode(204));
        using var http = _bed.Http(me.Key);
        await SetWebhookAsync(http, "/hooks/link");
        await AskAsync(http, "ticket:7.b", "Where is my parcel?");
        await AskAsync(http, "ticket:7.b", "Can I talk to a human please?");
        Assert.Equal(1, await Sender().DeliverDueAsync(CancellationToken.None));
        var link = JsonNode.Parse(Assert.Single(_receiver.LogEntries).RequestMessage.Body!)!["link"]!.GetValue<string>();

        // ':' and '.' would not survive as an HTML id used in a URL fragment and CSS: they are encoded.
        Assert.EndsWith("#conversation-ticket_003A7_002Eb", link);
        await AssertLinkOpensTheRowAsync(me, link, "ticket:7.b");

        // Another subscription's console session is refused this subscription's link and shows none of it.
        using var other = await ConsoleAsync(someoneElse.Subscription.Id);
        var refused = await other.GetAsync(new Uri(link).PathAndQuery);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.DoesNotContain("ticket:7.b", await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await other.GetAsync("/console?tab=activity")).StatusCode);

        // Without a console session the console's usual answer: open it from HomePort.
        using var anonymous = _bed.Http(null);
        var signedOut = await anonymous.GetAsync(new Uri(link).PathAndQuery);
        Assert.Equal(HttpStatusCode.Unauthorized, signedOut.StatusCode);
        Assert.DoesNotContain("ticket:7.b", await signedOut.Content.ReadAsStringAsync());
    }

    /// <summary>The webhook's link, opened by the buyer in the console, is the Activity tab with the conversation's row carrying the link's anchor.</summary>
    private async Task AssertLinkOpensTheRowAsync(Subscriber me, string link, string conversation)
    {
        var address = new Uri(link);
        Assert.Equal("/console", address.AbsolutePath);
        var escalation = await _bed.Tenants.QueryAsync(db => db.HandoffConversations.AsNoTracking().SingleAsync(c => c.SubscriptionId == me.Subscription.Id && c.Conversation == conversation));
        Assert.Equal($"?tab=activity&resource={me.Resource:N}&escalation={HandoffService.EscalationIdPrefix}{escalation.Id:N}", address.Query);
        var anchor = address.Fragment.TrimStart('#');
        Assert.Equal(HandoffService.AnchorOf(conversation), anchor);

        using var buyer = await ConsoleAsync(me.Subscription.Id);
        var page = await buyer.GetAsync(address.PathAndQuery);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var row = System.Text.RegularExpressions.Regex.Match(html, $"<tr id=\"{anchor}\">\\s*<td>([^<]*)</td>");
        Assert.True(row.Success, $"no row with id {anchor} in the Activity tab");
        Assert.Equal(conversation, System.Net.WebUtility.HtmlDecode(row.Groups[1].Value));
    }

    /// <summary>A browser-like client holding the console session of the subscription, opened from its console link.</summary>
    private async Task<HttpClient> ConsoleAsync(Guid subscriptionId)
    {
        var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Server.Url };
        var link = await _bed.Services.GetRequiredService<CmpWaldurAdapter.Web.ConsoleAccess>().CreateLinkAsync(subscriptionId, CancellationToken.None);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(link.PathAndQuery)).StatusCode);
        return browser;
    }

    [Fact]
    public async Task Each_delivery_of_a_slow_batch_is_claimed_for_the_delivery_timeout_from_its_own_claim()
    {
        // Another replica may take a delivery whose claim has run out. Each claim must therefore last from when it is
        // made: dated from the start of the batch, the third of three slow deliveries was claimed already expired.
        var clock = new TestClock(DateTimeOffset.UtcNow);
        await using var bed = await ChatTestBed.StartAsync(
            (_, settings) => settings["Handoff:DeliveryInterval"] = "01:00:00",
            services => services.AddSingleton<TimeProvider>(clock));
        var me = await bed.SubscribeAsync(credits: 0, knowledge: false);
        using var http = bed.Http(me.Key);
        var response = await http.PutAsync("/v1/handoff/webhook", ChatTestBed.Json($$"""{"url": "{{_receiver.Url}}/hooks/slow"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var timeout = bed.Services.GetRequiredService<IOptions<HandoffOptions>>().Value.DeliveryTimeout;
        var due = clock.GetUtcNow();
        var deliveries = Enumerable.Range(0, 3).Select(i => new HandoffDelivery
        {
            Id = Guid.NewGuid(), SubscriptionId = me.Subscription.Id, Payload = "{}", NextAttemptAt = due.AddSeconds(i - 3), CreatedAt = due,
        }).ToList();
        await bed.Tenants.QueryAsync(db =>
        {
            db.HandoffDeliveries.AddRange(deliveries);
            return db.SaveChangesAsync();
        });

        // Each receipt takes the whole delivery timeout; on arrival, how long is its claim still good for?
        var claimLeft = new ConcurrentDictionary<Guid, TimeSpan>();
        _receiver.Given(Request.Create().WithPath("/hooks/slow").UsingPost()).RespondWith(Response.Create().WithCallback(request =>
        {
            var id = Guid.Parse(request.Headers!["X-Cmp-Delivery"].Single());
            var claimedUntil = bed.Tenants.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().Where(d => d.Id == id).Select(d => d.NextAttemptAt).SingleAsync())
                .GetAwaiter().GetResult();
            claimLeft[id] = claimedUntil - clock.GetUtcNow();
            clock.Advance(timeout);
            return new ResponseMessage { StatusCode = 204 };
        }));

        Assert.Equal(3, await bed.Services.GetRequiredService<HandoffWebhookSender>().DeliverDueAsync(CancellationToken.None));
        Assert.All(deliveries, d => Assert.True(claimLeft[d.Id] > timeout, $"Delivery {deliveries.IndexOf(d) + 1} arrived with its claim good for {claimLeft[d.Id]} only."));
    }

    [Fact]
    public async Task A_client_sending_its_own_growing_history_is_one_conversation_and_its_third_unanswered_question_escalates()
    {
        var me = await _bed.SubscribeAsync(credits: 100); // escalate_after = 3
        using var http = _bed.Http(me.Key);
        await AddDocumentAsync(me); // every question retrieves a passage: only the agent's words decide
        _bed.Tenants.Langflow.ScriptNextAnswers(CannotAnswer, "Your parcel left the warehouse today.", CannotAnswer, CannotAnswer);

        // As OpenAI's SDKs do: no X-Conversation-Id, the whole history with every request, the last one streamed.
        var chat = new SdkConversation(http, "You are the shop's assistant.");
        var handoffs = new List<JsonNode?>();
        foreach (var question in new[] { "Do you ship to Mars?", "Where is my parcel?", "Can I pay in gold?" })
        {
            handoffs.Add(await chat.AskAsync(question));
        }

        handoffs.Add(await chat.AskAsync("Is there a discount for cats?", stream: true));

        // Answers 1, 3 and 4 were unanswered: the fourth message reached N = 3.
        Assert.All(handoffs.Take(3), Assert.Null);
        Assert.Equal("unanswered_questions", handoffs[3]!["reason"]!.GetValue<string>());
        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations"))!["data"]!.AsArray();
        var escalation = Assert.Single(listed)!;
        Assert.StartsWith("m-", escalation["conversation"]!.GetValue<string>());
        Assert.Equal(3, escalation["unanswered"]!.GetValue<int>());
        // The person taking over reads the whole conversation, the turns the client sent back included.
        var transcript = escalation["transcript"]!.AsArray().Select(t => t!["content"]!.GetValue<string>()).ToList();
        Assert.Equal(8, transcript.Count);
        Assert.Equal("Do you ship to Mars?", transcript[0]);
        Assert.Equal("Is there a discount for cats?", transcript[6]);
        // Memory is as before: each run in a session of its own.
        Assert.Equal(4, _bed.Tenants.Langflow.RunHistories.Select(r => r.SessionId).Distinct().Count());
    }

    [Fact]
    public async Task Conversations_of_one_key_sending_their_own_history_are_counted_apart_even_with_the_same_first_question()
    {
        var me = await _bed.SubscribeAsync(credits: 100); // escalate_after = 3
        using var http = _bed.Http(me.Key);
        await AddDocumentAsync(me);
        _bed.Tenants.Langflow.ScriptNextAnswers(Enumerable.Repeat(CannotAnswer, 9).ToArray());
        var mars = new SdkConversation(http, null);
        var gold = new SdkConversation(http, null);
        var marsOfCarol = new SdkConversation(http, null, user: "carol@example.com");

        var handoffs = new List<JsonNode?>();
        foreach (var (mine, carol, other) in new[] { ("Do you ship to Mars?", "Do you ship to Mars?", "Can I pay in gold?"), ("Really?", "Why not?", "Silver?"), ("Moon?", "Venus?", "Bronze?") })
        {
            handoffs.Add(await mars.AskAsync(mine));
            handoffs.Add(await marsOfCarol.AskAsync(carol));
            handoffs.Add(await gold.AskAsync(other));
        }

        // Merged, any two would have reached 3 unanswered in the second round.
        Assert.All(handoffs.Take(6), Assert.Null);
        Assert.All(handoffs.Skip(6), h => Assert.Equal("unanswered_questions", h!["reason"]!.GetValue<string>()));
        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/handoff/escalations"))!["data"]!.AsArray();
        Assert.Equal(3, listed.Select(e => e!["conversation"]!.GetValue<string>()).Distinct().Count());
        Assert.All(listed, e => Assert.Equal(3, e!["unanswered"]!.GetValue<int>()));
        Assert.Equal(["Do you ship to Mars?", "Do you ship to Mars?", "Can I pay in gold?"],
            listed.Select(e => e!["transcript"]![0]!["content"]!.GetValue<string>()).Order(StringComparer.Ordinal).Reverse().ToList());
    }

    /// <summary>An OpenAI SDK-style client: it keeps the history and sends all of it with every question, and no X-Conversation-Id.</summary>
    private sealed class SdkConversation(HttpClient http, string? system, string? user = null)
    {
        private readonly JsonArray _messages = system is null ? [] : [new JsonObject { ["role"] = "system", ["content"] = system }];

        /// <summary>Asks and keeps the answer in the history; returns the completion's handoff field (the final chunk's when streamed).</summary>
        public async Task<JsonNode?> AskAsync(string question, bool stream = false)
        {
            _messages.Add(new JsonObject { ["role"] = "user", ["content"] = question });
            var body = new JsonObject { ["messages"] = _messages.DeepClone(), ["stream"] = stream };
            if (user is not null)
            {
                body["user"] = user;
            }

            using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json(body.ToJsonString()));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            string answer;
            JsonNode? handoff;
            if (stream)
            {
                var chunks = text.Split('\n').Where(l => l.StartsWith("data: {", StringComparison.Ordinal)).Select(l => JsonNode.Parse(l["data: ".Length..])!).ToList();
                answer = string.Concat(chunks.Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>()));
                handoff = chunks[^1]["handoff"];
            }
            else
            {
                var completion = JsonNode.Parse(text)!;
                answer = completion["choices"]![0]!["message"]!["content"]!.GetValue<string>();
                handoff = completion["handoff"];
            }

            _messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = answer });
            return handoff?.DeepClone();
        }
    }

    private HandoffWebhookSender Sender() => _bed.Services.GetRequiredService<HandoffWebhookSender>();

    [Fact]
    public async Task A_streamed_answer_that_hands_over_flags_it_on_the_final_chunk()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);

        var calm = await StreamAsync(http, "conv-s", "Where is my parcel?");
        var handedOver = await StreamAsync(http, "conv-s", "Can I talk to a human?");

        Assert.DoesNotContain(calm, c => c["handoff"] is not null);
        var final = Assert.Single(handedOver, c => c["handoff"] is not null);
        Assert.Equal("stop", final["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal("escalated", final["handoff"]!["status"]!.GetValue<string>());
        Assert.Equal(HandoffService.VisitorMessage, final["handoff"]!["message"]!.GetValue<string>());
        Assert.Equal(1, await _bed.Tenants.QueryAsync(db => db.HandoffConversations.CountAsync(c => c.EscalatedAt != null)));
    }

    [Fact]
    public async Task A_replayed_streamed_answer_that_handed_over_keeps_its_flag()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);

        var live = await StreamAsync(http, "conv-r", "Can I talk to a human?", idempotencyKey: "handoff-once");
        var replayed = await StreamAsync(http, "conv-r", "Can I talk to a human?", idempotencyKey: "handoff-once");

        Assert.Equal("escalated", Assert.Single(live, c => c["handoff"] is not null)["handoff"]!["status"]!.GetValue<string>());
        Assert.Equal("escalated", Assert.Single(replayed, c => c["handoff"] is not null)["handoff"]!["status"]!.GetValue<string>());
        Assert.Single(_bed.Tenants.Langflow.Runs);
    }

    private static async Task<List<JsonNode>> StreamAsync(HttpClient http, string conversation, string question, string? idempotencyKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json(new JsonObject { ["message"] = question, ["stream"] = true }.ToJsonString()) };
        request.Headers.Add("X-Conversation-Id", conversation);
        if (idempotencyKey is not null)
        {
            request.Headers.Add("Idempotency-Key", idempotencyKey);
        }

        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n');
        Assert.Equal("data: [DONE]", lines.Last(l => l.Length > 0));
        return [.. lines.Where(l => l.StartsWith("data: {", StringComparison.Ordinal)).Select(l => JsonNode.Parse(l["data: ".Length..])!)];
    }

    /// <summary>One parsed document in the subscription's knowledge base: the fake's retrieval then returns a passage for every question.</summary>
    private async Task AddDocumentAsync(Subscriber me)
    {
        using var http = _bed.Http(me.Key);
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(System.Text.Encoding.UTF8.GetBytes("Refunds are paid within 30 days. We ship every parcel, even to Mars; pay in gold if you like; a discount for cats and dogs."));
        file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("text/markdown");
        form.Add(file, "file", "refunds.md");
        using var upload = await http.PostAsync("/v1/knowledge/documents", form);
        Assert.True(upload.IsSuccessStatusCode, await upload.Content.ReadAsStringAsync());
        _bed.Tenants.Ragflow.FinishParsing(me.Subscription.RagflowDatasetId!);
    }

    private async Task<string> SetWebhookAsync(HttpClient http, string path)
    {
        var response = await http.PutAsync("/v1/handoff/webhook", ChatTestBed.Json($$"""{"url": "{{_receiver.Url}}{{path}}"}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["secret"]!.GetValue<string>();
    }

    private static async Task<HttpResponseMessage> AskAsync(HttpClient http, string conversation, string question)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json(new JsonObject { ["message"] = question }.ToJsonString()) };
        request.Headers.Add("X-Conversation-Id", conversation);
        var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response;
    }
}

/// <summary>The Quartz job delivers the outbox on its own: an escalation reaches the receiver without anyone calling the sender.</summary>
public sealed class HandoffDeliveryJobTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;
    private WireMockServer _receiver = null!;

    public async Task InitializeAsync()
    {
        _receiver = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"], StartAdminInterface = false });
        _receiver.Given(Request.Create().WithPath("/hooks").UsingPost()).RespondWith(Response.Create().WithStatusCode(200));
        _bed = await ChatTestBed.StartAsync(settings => settings["Handoff:DeliveryInterval"] = "00:00:00.500");
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        _receiver.Stop();
    }

    [Fact]
    public async Task The_scheduled_job_delivers_an_escalation_once()
    {
        var me = await _bed.SubscribeAsync();
        using var http = _bed.Http(me.Key);
        Assert.Equal(HttpStatusCode.OK, (await http.PutAsync("/v1/handoff/webhook", ChatTestBed.Json($$"""{"url": "{{_receiver.Url}}/hooks"}"""))).StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = ChatTestBed.Json("""{"message": "Can I talk to a human?"}""") };
        request.Headers.Add("X-Conversation-Id", "conv-job");
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(request)).StatusCode);

        await CmpWaldurAdapter.Testing.Hosting.Eventually.TrueAsync(() => _receiver.LogEntries.Any(), TimeSpan.FromSeconds(20));
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // a few more firings: still one delivery

        Assert.Single(_receiver.LogEntries);
        Assert.NotNull((await _bed.Tenants.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().SingleAsync())).DeliveredAt);
    }
}
