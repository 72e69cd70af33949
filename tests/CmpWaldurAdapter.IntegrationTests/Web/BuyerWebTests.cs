using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>The buyer pages' server-side guarantees: console links, the try allowance, widget origins and tokens, console saves.</summary>
public sealed partial class BuyerWebTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
    private BuyerWebTestBed _bed = null!;

    private readonly UpdateRecorder _updates = new();

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(now: Start);
        _bed.Settings["Web:TryMessagesPerAddress"] = "7";
        _bed.Settings["Web:TrustForwardedHeaders"] = "true";
        _bed.Settings["Web:ForwardedProxies"] = "2"; // a CDN in front of the ingress
        await _bed.StartAsync(services => services.AddSingleton<ITenantProvisioner>(_updates));
    }

    /// <summary>Records the Update steps a console save runs, as an Update order would run them.</summary>
    private sealed class UpdateRecorder : ITenantProvisioner
    {
        public ConcurrentQueue<JsonObject> Applied { get; } = new();

        public IReadOnlyList<ProvisioningStep> StepsFor(CmpWaldurAdapter.Core.Orders.OrderType type) =>
            type == CmpWaldurAdapter.Core.Orders.OrderType.Update
                ? [new ProvisioningStep("langflow-flow-config", (context, _) =>
                {
                    Applied.Enqueue((JsonObject)context.Configuration.DeepClone());
                    context.Note("Your agent was updated with your new settings.");
                    return Task.CompletedTask;
                })]
                : [];
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private HttpClient Browser(CookieContainer? cookies = null) =>
        new(new HttpClientHandler { CookieContainer = cookies ?? new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Url };

    private async Task<HttpClient> ConsoleAsync(Guid subscriptionId)
    {
        var browser = Browser();
        var opened = await browser.GetAsync((await _bed.ConsoleLinkAsync(subscriptionId)).PathAndQuery);
        Assert.Equal(HttpStatusCode.Redirect, opened.StatusCode);
        Assert.Equal("/console", opened.Headers.Location!.ToString());
        return browser;
    }

    [Fact]
    public async Task A_console_link_opens_the_console_of_its_own_subscription_only()
    {
        var subscription = await _bed.AddSubscriptionAsync(configuration: new JsonObject { ["agent_name"] = "Ada" });
        await _bed.AddSubscriptionAsync(configuration: new JsonObject { ["agent_name"] = "Someone else" });
        using var browser = await ConsoleAsync(subscription.Id);

        var page = await browser.GetStringAsync("/console?tab=run");

        Assert.Contains("Ada", page);
        Assert.DoesNotContain("Someone else", page);
    }

    [Fact]
    public async Task Forged_tampered_and_expired_console_links_are_refused_and_set_no_session()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var link = (await _bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery;
        var token = Uri.UnescapeDataString(link[(link.IndexOf("t=", StringComparison.Ordinal) + 2)..]);
        var tampered = token[..^4] + (token[^4] == 'A' ? "B" : "A") + token[^3..];

        foreach (var bad in new[] { "/console/open?t=" + Uri.EscapeDataString(tampered), "/console/open?t=CfDJ8forged", "/console/open" })
        {
            using var browser = Browser();
            var refused = await browser.GetAsync(bad);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.False(refused.Headers.Contains("Set-Cookie"));
            Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/console")).StatusCode);
        }

        _bed.Clock!.Advance(TimeSpan.FromDays(30) + TimeSpan.FromSeconds(1));
        using var late = Browser();
        Assert.Equal(HttpStatusCode.Forbidden, (await late.GetAsync(link)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await late.GetAsync("/console")).StatusCode);
    }

    [Fact]
    public async Task A_console_page_reached_from_another_site_without_its_cookie_is_asked_again_from_its_own_site()
    {
        using var visitor = Browser();
        using var crossSite = new HttpRequestMessage(HttpMethod.Get, "/console?tab=activity");
        crossSite.Headers.Add("Sec-Fetch-Site", "cross-site");
        using var sameSite = new HttpRequestMessage(HttpMethod.Get, "/console?tab=activity");
        sameSite.Headers.Add("Sec-Fetch-Site", "same-origin");

        var bounced = await visitor.SendAsync(crossSite);
        var refused = await visitor.SendAsync(sameSite);

        // A browser sends no SameSite=Strict cookie on a navigation begun elsewhere: the page asks for itself again.
        Assert.Equal(HttpStatusCode.OK, bounced.StatusCode);
        Assert.Contains("<meta http-equiv=\"refresh\" content=\"0\">", await bounced.Content.ReadAsStringAsync());
        // Asked from its own site and still without a session: the notice, so the bounce never loops.
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Contains("Open the console from HomePort", await refused.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_console_session_expires_and_a_rotated_link_ends_old_links_and_sessions()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var oldLink = (await _bed.ConsoleLinkAsync(subscription.Id)).PathAndQuery;
        using var session = await ConsoleAsync(subscription.Id);
        Assert.Equal(HttpStatusCode.OK, (await session.GetAsync("/console")).StatusCode);

        await _bed.Services.GetRequiredService<ConsoleReportContributor>().RotateAsync(subscription, CancellationToken.None);
        var newLink = await _bed.ConsoleLinkAsync(subscription.Id);

        Assert.Equal(HttpStatusCode.Unauthorized, (await session.GetAsync("/console")).StatusCode);
        using var stale = Browser();
        Assert.Equal(HttpStatusCode.Forbidden, (await stale.GetAsync(oldLink)).StatusCode);
        using var fresh = Browser();
        Assert.Equal(HttpStatusCode.Redirect, (await fresh.GetAsync(newLink.PathAndQuery)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await fresh.GetAsync("/console")).StatusCode);

        _bed.Clock!.Advance(TimeSpan.FromHours(8) + TimeSpan.FromSeconds(1));
        Assert.Equal(HttpStatusCode.Unauthorized, (await fresh.GetAsync("/console")).StatusCode);
    }

    [Fact]
    public async Task The_console_link_is_in_the_report_of_a_provisioned_order()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var contributor = _bed.Services.GetRequiredService<ConsoleReportContributor>();
        var order = new CmpWaldurAdapter.Orders.OrderRecord { OrderUuid = Guid.NewGuid(), Type = CmpWaldurAdapter.Core.Orders.OrderType.Create };

        var section = Assert.Single(await contributor.ContributeAsync(subscription, order, CancellationToken.None));

        var link = LinkPattern().Match(section.Body).Value;
        Assert.StartsWith(new Uri(_bed.Url, "console/open?t=").ToString(), link);
        using var browser = Browser();
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(new Uri(link).PathAndQuery)).StatusCode);
        Assert.Empty(await contributor.ContributeAsync(subscription, new CmpWaldurAdapter.Orders.OrderRecord { OrderUuid = Guid.NewGuid(), Type = CmpWaldurAdapter.Core.Orders.OrderType.Terminate }, CancellationToken.None));
    }

    [Fact]
    public async Task The_try_allowance_is_five_per_visitor_and_dropping_the_cookie_does_not_reset_it_for_the_address()
    {
        using var visitor = Browser();
        Assert.Contains("Demo mode: <span id=\"remaining-count\">5</span>", await visitor.GetStringAsync("/try/research-agent"));
        for (var sent = 1; sent <= 5; sent++)
        {
            var answer = await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = $"hello {sent}" });
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            var body = JsonNode.Parse(await answer.Content.ReadAsStringAsync())!;
            Assert.Equal($"Demo of Research Agent: you said hello {sent}", body["answer"]!.GetValue<string>());
            Assert.Equal(5 - sent, body["remaining"]!.GetValue<int>());
        }

        var sixth = await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "one more" });
        Assert.Equal(HttpStatusCode.TooManyRequests, sixth.StatusCode);
        Assert.Equal("demo_limit_reached", JsonNode.Parse(await sixth.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(5, _bed.Agent.DemoSessions.Count);

        // Without the cookie the visitor is new, but the address has only 7 demo messages (Web:TryMessagesPerAddress).
        using var noCookie = Browser();
        Assert.Equal(HttpStatusCode.OK, (await noCookie.PostAsJsonAsync("/try/research-agent/messages", new { message = "a" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await noCookie.PostAsJsonAsync("/try/research-agent/messages", new { message = "b" })).StatusCode);
        using var again = Browser();
        Assert.Equal(HttpStatusCode.TooManyRequests, (await again.PostAsJsonAsync("/try/research-agent/messages", new { message = "c" })).StatusCode);

        // Each offering has its own allowance; try mode charges nothing and records no subscription.
        Assert.Equal(HttpStatusCode.OK, (await visitor.PostAsJsonAsync("/try/code-assistant/messages", new { message = "hi" })).StatusCode);
        Assert.Equal(0, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync()));
        Assert.Equal(0, await _bed.QueryAsync(db => db.Subscriptions.CountAsync()));
    }

    [Theory]
    [InlineData(null)] // fetch(…, {mode: 'no-cors', body: new Blob([…])}) from another site
    [InlineData("text/plain")] // a cross-site form with enctype="text/plain"
    [InlineData("application/x-www-form-urlencoded")]
    public async Task A_try_message_not_declared_json_is_refused_and_spends_nothing_as_another_site_could_send_it(string? contentType)
    {
        using var visitor = Browser();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/try/research-agent/messages")
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes("{\"message\":\"hello\"}")),
        };
        if (contentType is not null)
        {
            request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        }

        var refused = await visitor.SendAsync(request);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, refused.StatusCode);
        Assert.Equal("unsupported_media_type", JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Empty(_bed.Agent.DemoSessions);
        var answer = await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hello" });
        Assert.Equal(4, JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["remaining"]!.GetValue<int>());
    }

    [Fact]
    public async Task Behind_a_trusted_proxy_the_address_limit_counts_each_forwarded_client_address()
    {
        async Task<HttpStatusCode> SendAsync(string address)
        {
            using var visitor = Browser();
            using var request = new HttpRequestMessage(HttpMethod.Post, "/try/topic-assistant/messages") { Content = JsonContent.Create(new { message = "hi" }) };
            request.Headers.Add("X-Forwarded-For", address);
            return (await visitor.SendAsync(request)).StatusCode;
        }

        for (var sent = 0; sent < 7; sent++)
        {
            Assert.Equal(HttpStatusCode.OK, await SendAsync("203.0.113.7"));
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, await SendAsync("203.0.113.7"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync("198.51.100.20"));

        // Two proxies (Web:ForwardedProxies): the client is the second entry from the end, whichever CDN edge
        // forwarded it, and what the client put before it is ignored.
        for (var sent = 0; sent < 7; sent++)
        {
            Assert.Equal(HttpStatusCode.OK, await SendAsync($"192.0.2.{sent}, 203.0.113.77, 10.0.0.{sent}"));
        }

        Assert.Equal(HttpStatusCode.TooManyRequests, await SendAsync("203.0.113.77, 10.0.0.99"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync("203.0.113.7, 198.51.100.21, 10.0.0.1"));
    }

    [Fact]
    public async Task A_forged_try_cookie_counts_as_a_new_visitor_and_bad_requests_cost_nothing()
    {
        var cookies = new CookieContainer();
        cookies.Add(_bed.Url, new Cookie(BuyerWebEndpoints.TryVisitorCookie, "forged", "/try"));
        using var visitor = Browser(cookies);

        Assert.Equal(HttpStatusCode.BadRequest, (await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "  " })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await visitor.PostAsJsonAsync("/try/no-such-agent/messages", new { message = "hi" })).StatusCode);
        var first = JsonNode.Parse(await (await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hi" })).Content.ReadAsStringAsync())!;

        Assert.Equal(4, first["remaining"]!.GetValue<int>());
        Assert.NotEqual("forged", cookies.GetCookies(new Uri(_bed.Url, "/try/"))[BuyerWebEndpoints.TryVisitorCookie]!.Value);
    }

    [Fact]
    public async Task The_widget_starts_only_from_allowed_origins_and_answers_only_with_a_visitor_token_of_that_origin()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com", "*.example.org");
        using var client = _bed.Server.CreateClient();

        var allowed = await Session(client, key, "https://shop.example.com");
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal("https://shop.example.com", allowed.Headers.GetValues("Access-Control-Allow-Origin").Single());
        var token = JsonNode.Parse(await allowed.Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.OK, (await Session(client, key, "https://help.example.org")).StatusCode);

        foreach (var origin in new[] { "https://evil.example.net", "https://example.org", "https://shop.example.com.evil.net", "null" })
        {
            var refused = await Session(client, key, origin);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            var refusal = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!;
            Assert.Null(refusal["token"]);
            Assert.Equal("origin_not_allowed", refusal["error"]!["code"]!.GetValue<string>());
        }

        Assert.Equal(HttpStatusCode.Forbidden, (await Session(client, key, null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Session(client, await _bed.SecretKeyAsync(subscription.Id), "https://shop.example.com")).StatusCode);

        var answer = await Chat(client, token, "https://shop.example.com", "hi");
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("Ada: you said hi", JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["answer"]!.GetValue<string>());
        Assert.Equal(1, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscription.Id)));

        // A spoofed Origin header opens nothing without a valid visitor token of that origin.
        Assert.Equal(HttpStatusCode.Unauthorized, (await Chat(client, null, "https://shop.example.com", "hi")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Chat(client, key, "https://shop.example.com", "hi")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Chat(client, token[..^3] + "abc", "https://shop.example.com", "hi")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Chat(client, token, "https://help.example.org", "hi")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await Chat(client, token, null, "hi")).StatusCode);
        Assert.Equal(1, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscription.Id)));

        // Removing the domain ends its sessions at once; an expired token is refused.
        await _bed.AllowDomainsAsync(subscription.Id, "*.example.org");
        Assert.Equal(HttpStatusCode.Forbidden, (await Chat(client, token, "https://shop.example.com", "hi")).StatusCode);
        var other = JsonNode.Parse(await (await Session(client, key, "https://help.example.org")).Content.ReadAsStringAsync())!["token"]!.GetValue<string>();
        _bed.Clock!.Advance(TimeSpan.FromMinutes(16));
        Assert.Equal(HttpStatusCode.Unauthorized, (await Chat(client, other, "https://help.example.org", "hi")).StatusCode);
    }

    [Fact]
    public async Task Widget_preflight_allows_the_asking_origin_and_widget_js_is_served_cross_origin()
    {
        using var client = _bed.Server.CreateClient();
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/widget/v1/chat");
        preflight.Headers.Add("Origin", "https://shop.example.com");
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        var answer = await client.SendAsync(preflight);
        Assert.Equal(HttpStatusCode.NoContent, answer.StatusCode);
        Assert.Equal("https://shop.example.com", answer.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.False(answer.Headers.Contains("Access-Control-Allow-Credentials"));

        var script = await client.GetAsync("/widget.js");
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Equal("*", script.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("CMPWidget", await script.Content.ReadAsStringAsync());

        var page = await client.GetAsync("/marketplace");
        var policy = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", policy);
        Assert.DoesNotContain("unsafe-inline", policy);
        Assert.DoesNotMatch("<script>(?!</script>)", await page.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_console_save_validates_each_field_and_writes_the_configuration_an_update_order_writes()
    {
        var subscription = await _bed.AddSubscriptionAsync(configuration: new JsonObject { ["agent_name"] = "Ada", ["tone"] = "friendly" });
        using var browser = await ConsoleAsync(subscription.Id);
        var page = await browser.GetStringAsync("/console");
        var antiforgery = AntiforgeryField().Match(page).Groups[1].Value;

        var refused = await browser.PostAsync("/console?handler=Save", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = antiforgery,
            ["setting_agent_name"] = "Bea",
            ["setting_brand_colour"] = "blue",
            ["setting_escalate_after"] = "99",
        }));
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var refusal = await refused.Content.ReadAsStringAsync();
        Assert.Contains("id=\"setting_brand_colour_error\">Brand colour must be a hex colour", refusal);
        Assert.Contains("id=\"setting_escalate_after_error\">Escalate after N unanswered questions must be between 1 and 20", refusal);
        Assert.Contains("value=\"Bea\"", refusal);
        var unchanged = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync(s => s.Id == subscription.Id));
        Assert.Equal(1, unchanged.ConfigurationVersion);
        Assert.Empty(_updates.Applied);

        var saved = await browser.PostAsync("/console?handler=Save", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["__RequestVerificationToken"] = antiforgery,
            ["setting_agent_name"] = "Bea",
            ["setting_welcome_message"] = "Welcome to Bea's desk",
            ["setting_brand_colour"] = "#10b981",
            ["setting_escalate_after"] = "4",
            ["setting_tone"] = "professional",
        }));
        Assert.Equal(HttpStatusCode.OK, saved.StatusCode);
        var stored = await _bed.QueryAsync(db => db.Subscriptions.SingleAsync(s => s.Id == subscription.Id));
        Assert.Equal(2, stored.ConfigurationVersion);
        var configuration = JsonNode.Parse(stored.Configuration)!;
        Assert.Equal("Bea", configuration["agent_name"]!.GetValue<string>());
        Assert.Equal("Welcome to Bea's desk", configuration["welcome_message"]!.GetValue<string>());
        Assert.Equal(4, configuration["escalate_after"]!.GetValue<long>());
        Assert.Equal("professional", configuration["tone"]!.GetValue<string>());
        Assert.Contains("Your agent was updated with your new settings.", await saved.Content.ReadAsStringAsync());
        var applied = Assert.Single(_updates.Applied);
        Assert.True(JsonNode.DeepEquals(configuration, applied));

        // Without the anti-forgery token the session cookie alone changes nothing.
        var forged = await browser.PostAsync("/console?handler=Save", new FormUrlEncodedContent(new Dictionary<string, string> { ["setting_agent_name"] = "Mallory" }));
        Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        var chat = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hi" });
        Assert.Equal(HttpStatusCode.Unauthorized, chat.StatusCode);
        Assert.Contains("Bea", (await _bed.QueryAsync(db => db.Subscriptions.SingleAsync(s => s.Id == subscription.Id))).Configuration);
    }

    [Fact]
    public async Task The_run_tab_answers_with_the_configured_agent_charges_like_the_api_and_reports_credits()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 3);
        using var browser = await ConsoleAsync(subscription.Id);
        await ConsoleBrowser.UseRunTabAsync(browser);

        var response = await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var answer = JsonNode.Parse(text)!;

        Assert.Equal("Ada: you said hello", answer["answer"]!.GetValue<string>());
        Assert.Equal(2, answer["credits_used"]!.GetValue<long>());
        Assert.Equal(1, answer["balance"]!.GetValue<long>());
        var refused = await browser.PostAsJsonAsync("/console/api/chat", new { message = "again" });
        Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        Assert.Single(_bed.Agent.Runs);
    }

    [Fact]
    public async Task A_visitor_asking_for_a_person_in_run_is_handed_over_and_listed_in_activity()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10, configuration: new JsonObject { ["agent_name"] = "Ada", ["escalate_after"] = 3 });
        using var browser = await ConsoleAsync(subscription.Id);
        Assert.Contains("No conversation has been handed over yet.", await browser.GetStringAsync("/console?tab=activity"));
        await ConsoleBrowser.UseRunTabAsync(browser);

        var calm = JsonNode.Parse(await (await browser.PostAsJsonAsync("/console/api/chat", new { message = "hello" })).Content.ReadAsStringAsync())!;
        var handedOver = JsonNode.Parse(await (await browser.PostAsJsonAsync("/console/api/chat", new { message = "Can I speak to a person?" })).Content.ReadAsStringAsync())!;

        Assert.Null(calm["handoff"]);
        Assert.Equal(CmpWaldurAdapter.Capabilities.Handoff.HandoffService.VisitorMessage, handedOver["handoff"]!.GetValue<string>());
        Assert.Equal(4, handedOver["credits_used"]!.GetValue<long>()); // two messages; the handoff itself is free
        var activity = await browser.GetStringAsync("/console?tab=activity");
        Assert.Contains("asked for a person", activity);
        Assert.Contains("Can I speak to a person?", activity);
        Assert.Contains("no webhook set", activity);
    }

    [Fact]
    public async Task Run_questions_whose_knowledge_base_search_found_nothing_hand_the_conversation_over()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10, configuration: new JsonObject { ["agent_name"] = "Ada", ["escalate_after"] = 2 });
        // A knowledge base that answers nothing (the fake retriever finds no passage).
        await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.Id == subscription.Id).ExecuteUpdateAsync(u => u.SetProperty(s => s.RagflowDatasetId, "dataset-empty")));
        using var browser = await ConsoleAsync(subscription.Id);
        await ConsoleBrowser.UseRunTabAsync(browser);

        var first = JsonNode.Parse(await (await browser.PostAsJsonAsync("/console/api/chat", new { message = "Do you ship to Mars?", conversation = "run-1" })).Content.ReadAsStringAsync())!;
        var second = JsonNode.Parse(await (await browser.PostAsJsonAsync("/console/api/chat", new { message = "Can I pay in gold?", conversation = "run-1" })).Content.ReadAsStringAsync())!;

        Assert.Equal("Ada: you said Do you ship to Mars?", first["answer"]!.GetValue<string>());
        Assert.Null(first["handoff"]);
        Assert.Equal(CmpWaldurAdapter.Capabilities.Handoff.HandoffService.VisitorMessage, second["handoff"]!.GetValue<string>());
        var activity = await browser.GetStringAsync("/console?tab=activity");
        Assert.Contains("2 unanswered questions", activity);
        Assert.Contains($"id=\"{CmpWaldurAdapter.Capabilities.Handoff.HandoffService.AnchorOf("console-run-1")}\"", activity);
    }

    [Fact]
    public async Task The_escalation_webhook_is_set_in_activity_and_its_secret_is_shown_once()
    {
        var subscription = await _bed.AddSubscriptionAsync(configuration: new JsonObject { ["agent_name"] = "Ada", ["escalate_after"] = 3 });
        using var browser = await ConsoleAsync(subscription.Id);
        var page = await browser.GetStringAsync("/console?tab=activity");
        var antiforgery = AntiforgeryData().Match(page).Groups[1].Value;

        var refused = await browser.PostAsync("/console?tab=activity&handler=Webhook", new FormUrlEncodedContent([new("url", "ftp://example.com/x"), new("__RequestVerificationToken", antiforgery)]));
        var saved = await browser.PostAsync("/console?tab=activity&handler=Webhook", new FormUrlEncodedContent([new("url", "https://93.184.215.14/hooks"), new("__RequestVerificationToken", antiforgery)]));
        var savedPage = await saved.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("full https address", await refused.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, saved.StatusCode);
        var secret = System.Text.RegularExpressions.Regex.Match(savedPage, "id=\"webhook-secret\">([^<]+)<").Groups[1].Value;
        Assert.StartsWith("whsec_", secret);
        var stored = await _bed.Services.GetRequiredService<CmpWaldurAdapter.Capabilities.Handoff.HandoffService>().WebhookAsync(subscription.Id, CancellationToken.None);
        Assert.Equal("https://93.184.215.14/hooks", stored!.Url);
        var again = await browser.GetStringAsync("/console?tab=activity");
        Assert.Contains("https://93.184.215.14/hooks", again);
        Assert.DoesNotContain(secret, again);
    }

    /// <summary>
    /// The widget shows the agent's logo at the address the console does, naming the image's version: browsers and the
    /// buyer's CDN keep it for a year without asking. An address without the current version (none, or an old logo's)
    /// is checked again each time, so a new logo shows at once.
    /// </summary>
    [Fact]
    public async Task The_logo_is_kept_for_good_under_its_versioned_address_and_a_new_logo_gets_a_new_one()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await _bed.AllowDomainsAsync(subscription.Id, "shop.example.com");
        var store = _bed.Services.GetRequiredService<BuyerWebStore>();
        byte[] first = [0x89, 0x50, 0x4E, 0x47, 1], second = [0x89, 0x50, 0x4E, 0x47, 2];
        await store.UpdateAsync(subscription.Id, s => (s.Logo, s.LogoContentType) = (first, "image/png"), CancellationToken.None);
        using var client = _bed.Server.CreateClient();
        using var console = await ConsoleAsync(subscription.Id);
        async Task<string> WidgetLogoAsync() =>
            new Uri(JsonNode.Parse(await (await Session(client, key, "https://shop.example.com")).Content.ReadAsStringAsync())!["logo"]!.GetValue<string>()).PathAndQuery;
        static string CacheControl(HttpResponseMessage response) => response.Headers.NonValidated["Cache-Control"].ToString();

        var logo = await WidgetLogoAsync();
        var versioned = await client.GetAsync(logo);

        Assert.StartsWith($"/web/logo/{subscription.Id}?v=", logo);
        Assert.Contains($"src=\"{logo}\"", await console.GetStringAsync("/console"));
        Assert.Equal(HttpStatusCode.OK, versioned.StatusCode);
        Assert.Equal(first, await versioned.Content.ReadAsByteArrayAsync());
        Assert.Equal("public, max-age=31536000, immutable", CacheControl(versioned));
        Assert.Equal("no-cache", CacheControl(await client.GetAsync($"/web/logo/{subscription.Id}")));

        await store.UpdateAsync(subscription.Id, s => s.Logo = second, CancellationToken.None);
        var renewed = await WidgetLogoAsync();
        var old = await client.GetAsync(logo);

        Assert.NotEqual(logo, renewed);
        Assert.Equal(second, await (await client.GetAsync(renewed)).Content.ReadAsByteArrayAsync());
        Assert.Equal("no-cache", CacheControl(old)); // the old address now shows the new image: not to be kept under it
    }

    private static async Task<HttpResponseMessage> Session(HttpClient client, string key, string? origin)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/session") { Content = JsonContent.Create(new { key }) };
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        return await client.SendAsync(request);
    }

    private static async Task<HttpResponseMessage> Chat(HttpClient client, string? token, string? origin, string message)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/chat") { Content = JsonContent.Create(new { message }) };
        if (origin is not null)
        {
            request.Headers.Add("Origin", origin);
        }

        if (token is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }

        return await client.SendAsync(request);
    }

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();

    [GeneratedRegex("data-antiforgery=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryData();

    [GeneratedRegex(@"https?://\S+")]
    private static partial Regex LinkPattern();
}
