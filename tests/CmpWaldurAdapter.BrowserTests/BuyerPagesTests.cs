using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace CmpWaldurAdapter.BrowserTests;

/// <summary>The buyer pages in headless Chromium against the adapter on Kestrel loopback, with fake agents.</summary>
public sealed class BuyerPagesTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;
    private BrowserSession _browser = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        await _bed.StartAsync();
        _browser = await BrowserSession.LaunchAsync();
    }

    public async Task DisposeAsync()
    {
        await _browser.DisposeAsync();
        await _bed.DisposeAsync();
    }

    private string At(string path) => new Uri(_bed.Url, path).ToString();

    [Fact]
    public async Task The_try_page_answers_five_demo_messages_and_stops_at_the_fifth()
    {
        var page = await _browser.NewPageAsync();
        await page.GotoAsync(At("try/research-agent"));
        await Expect(page.Locator("#remaining")).ToHaveTextAsync("Demo mode: 5 messages remaining");
        await Expect(page.Locator("#subscribe")).ToHaveTextAsync("Subscribe Now – 3 credits/message");

        for (var sent = 1; sent <= 5; sent++)
        {
            await page.Locator("#message").FillAsync($"question {sent}");
            await page.Locator("#message").PressAsync("Enter");
            await Expect(page.Locator("#messages li.bot").Nth(sent)).ToHaveTextAsync($"Demo of Research Agent: you said question {sent}");
            await Expect(page.Locator("#remaining-count")).ToHaveTextAsync((5 - sent).ToString());
        }

        await Expect(page.Locator("#message")).ToBeDisabledAsync();
        await Expect(page.Locator("#send")).ToBeDisabledAsync();
        await Expect(page.Locator("#subscribe")).ToBeFocusedAsync();
        await BrowserSession.ScreenshotAsync(page, "try-limit-reached");

        // The page only mirrors the server: a sixth message sent around the disabled form is refused.
        var status = await page.EvaluateAsync<int>("() => fetch('/try/research-agent/messages', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ message: 'sixth' }) }).then(r => r.status)");
        Assert.Equal(429, status);
        Assert.Equal(5, _bed.Agent.DemoSessions.Count);
    }

    [Fact]
    public async Task A_console_save_of_name_and_welcome_shows_up_in_run()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 100);
        var page = await _browser.NewPageAsync();
        await page.GotoAsync((await _bed.ConsoleLinkAsync(subscription.Id)).ToString());
        Assert.EndsWith("/console", page.Url);

        await page.Locator("#setting_agent_name").FillAsync("Bea");
        await page.Locator("#setting_welcome_message").FillAsync("Welcome to Bea's help desk!");
        await page.Locator("#setting_brand_colour").FillAsync("not a colour");
        await page.Locator("#save").ClickAsync();
        await Expect(page.Locator("#setting_brand_colour_error")).ToHaveTextAsync("Brand colour must be a hex colour such as #2563eb.");
        await Expect(page.Locator("#setting_brand_colour")).ToHaveAttributeAsync("aria-invalid", "true");
        await BrowserSession.ScreenshotAsync(page, "console-save-refused");

        await page.Locator("#setting_brand_colour").FillAsync("#047857");
        await page.Locator("#save").ClickAsync();
        await Expect(page.Locator("#console-message")).ToContainTextAsync("saved");

        await page.GetByRole(AriaRole.Link, new() { Name = "Run" }).ClickAsync();
        await Expect(page.Locator("#agent-name")).ToHaveTextAsync("Bea");
        await Expect(page.Locator("#messages .welcome")).ToHaveTextAsync("Welcome to Bea's help desk!");
        await Expect(page.Locator("#credits")).ToHaveTextAsync("Credits used: 0 | Balance: 100");
        await page.Locator("#message").FillAsync("hello");
        await page.Locator("#send").ClickAsync();
        await Expect(page.Locator("#messages li.bot").Nth(1)).ToHaveTextAsync("Bea: you said hello");
        await Expect(page.Locator("#credits")).ToHaveTextAsync("Credits used: 2 | Balance: 98");
        await BrowserSession.ScreenshotAsync(page, "console-run");
    }

    [Fact]
    public async Task A_console_link_followed_from_another_site_opens_the_console()
    {
        // HomePort is another site: the buyer follows the link in the resource's report from there.
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        var link = (await _bed.ConsoleLinkAsync(subscription.Id)).ToString();
        await using var homePort = await HostPage.StartAsync(_bed.Url, "pk_live_unused");
        var page = await _browser.NewPageAsync();
        await page.GotoAsync($"http://localhost:{homePort.Port}/");
        await page.EvaluateAsync("href => { const a = document.createElement('a'); a.id = 'console-link'; a.href = href; a.textContent = 'Open the console'; document.body.append(a); }", link);

        await page.Locator("#console-link").ClickAsync();

        await Expect(page.Locator("#setting_agent_name")).ToBeVisibleAsync();
        Assert.EndsWith("/console", page.Url);
        await BrowserSession.ScreenshotAsync(page, "console-from-another-site");
    }

    [Fact]
    public async Task Another_agents_console_link_followed_from_another_site_asks_before_switching()
    {
        var mine = await _bed.AddSubscriptionAsync(credits: 10);
        var theirs = await _bed.AddSubscriptionAsync(credits: 10, configuration: new JsonObject { ["agent_name"] = "Bob" });
        await using (var db = await _bed.Services.GetRequiredService<IDbContextFactory<CmpWaldurAdapter.Persistence.AdapterDbContext>>().CreateDbContextAsync())
        {
            await db.Customers.Where(c => c.Id == theirs.CustomerId).ExecuteUpdateAsync(c => c.SetProperty(x => x.Name, "Mallory & Co"));
        }

        var page = await _browser.NewPageAsync();
        await page.GotoAsync((await _bed.ConsoleLinkAsync(mine.Id)).ToString());
        await Expect(page.Locator("#setting_agent_name")).ToBeVisibleAsync();
        await using var elsewhere = await HostPage.StartAsync(_bed.Url, "pk_live_unused");
        var theirLink = (await _bed.ConsoleLinkAsync(theirs.Id)).ToString();
        async Task FollowFromElsewhereAsync()
        {
            await page.GotoAsync($"http://localhost:{elsewhere.Port}/");
            await page.EvaluateAsync("href => { const a = document.createElement('a'); a.id = 'console-link'; a.href = href; a.textContent = 'Open'; document.body.append(a); }", theirLink);
            await page.Locator("#console-link").ClickAsync();
        }

        await FollowFromElsewhereAsync();

        await Expect(page.Locator("#next-agent")).ToHaveTextAsync("My agent (Mallory & Co)");
        await BrowserSession.ScreenshotAsync(page, "console-switch-asked");
        await page.Locator("#stay").ClickAsync();
        await Expect(page.Locator("#setting_agent_name")).ToHaveValueAsync("Ada");

        await FollowFromElsewhereAsync();
        await page.Locator("#switch").ClickAsync();
        await Expect(page.Locator("#setting_agent_name")).ToHaveValueAsync("Bob");
    }

    [Fact]
    public async Task The_adapters_pages_keep_to_their_own_content_security_policy()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 50);
        var keys = _bed.Services.GetRequiredService<CmpWaldurAdapter.ApiKeys.ApiKeyService>();
        var created = await keys.CreateAsync(subscription.Id, CmpWaldurAdapter.ApiKeys.ApiKeyKind.Secret, "First key", CancellationToken.None);
        var reveal = At("keys/reveal/" + await keys.CreateRevealAsync(created, TimeSpan.FromDays(7), CancellationToken.None));
        var page = await _browser.NewPageAsync();
        // Chromium reports what the policy refused (an inline style or script, say) on the console.
        var refused = new List<string>();
        page.Console += (_, message) =>
        {
            if (message.Text.Contains("Content Security Policy", StringComparison.Ordinal))
            {
                refused.Add($"{page.Url}: {message.Text}");
            }
        };

        await page.GotoAsync(At("marketplace"));
        await page.GotoAsync(At("try/research-agent"));
        await page.GotoAsync((await _bed.ConsoleLinkAsync(subscription.Id)).ToString());
        foreach (var tab in new[] { "configuration", "keys", "widget", "usage", "activity", "run" })
        {
            await page.GotoAsync(At($"console?tab={tab}"));
        }

        await page.GotoAsync(reveal);
        await page.Locator("#reveal").ClickAsync();
        await Expect(page.Locator("#key")).ToHaveTextAsync(created.Plaintext);
        await page.GotoAsync(reveal);
        await Expect(page.Locator("h1")).ToHaveTextAsync("This link has already been used or has expired");

        Assert.Empty(refused);
    }

    [Fact]
    public async Task A_key_created_in_the_console_works_and_is_shown_only_once()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 50);
        var page = await _browser.NewPageAsync();
        await page.GotoAsync((await _bed.ConsoleLinkAsync(subscription.Id)).ToString());
        await page.GetByRole(AriaRole.Link, new() { Name = "API Keys" }).ClickAsync();
        await Expect(page.Locator("#curl")).ToContainTextAsync(At("v1/chat/completions"));

        await page.Locator("#key_name").FillAsync("CI server");
        await page.Locator("#create-key").ClickAsync();
        var key = (await page.Locator("#new-key").TextContentAsync())!.Trim();
        Assert.StartsWith("sk_live_", key);
        await Expect(page.Locator("table.keys")).ToContainTextAsync("CI server");
        await BrowserSession.ScreenshotAsync(page, "console-key-created");

        // The key works as the console's curl example uses it: a chat completion, then the usage it cost.
        using var api = new HttpClient { BaseAddress = _bed.Url };
        api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var chat = await api.PostAsync("/v1/chat/completions", new StringContent("{\"message\": \"hello\"}", System.Text.Encoding.UTF8, "application/json"));
        var answer = await chat.Content.ReadAsStringAsync();
        Assert.True(chat.StatusCode == HttpStatusCode.OK, answer);
        Assert.EndsWith("you said hello", JsonNode.Parse(answer)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        var usage = await api.GetAsync("/v1/usage");
        Assert.Equal(HttpStatusCode.OK, usage.StatusCode);
        Assert.Equal(48, JsonNode.Parse(await usage.Content.ReadAsStringAsync())!["balance"]!.GetValue<long>());

        await page.GotoAsync(At("console?tab=keys"));
        await Expect(page.Locator("table.keys")).ToContainTextAsync("CI server");
        await Expect(page.Locator("#new-key")).ToHaveCountAsync(0);
        Assert.DoesNotContain(key, await page.ContentAsync());
        await page.GotoAsync(At("console?tab=widget"));
        Assert.DoesNotContain(key, await page.ContentAsync());
    }

    [Fact]
    public async Task The_widget_tells_the_visitor_a_person_will_follow_up_when_they_ask_for_one()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20, configuration: new JsonObject { ["agent_name"] = "Ada", ["escalate_after"] = 3 });
        var handoff = _bed.Services.GetRequiredService<CmpWaldurAdapter.Capabilities.Handoff.HandoffService>();
        // A webhook nobody answers: the escalation event (and its link) waits in the outbox.
        await handoff.SetWebhookAsync(subscription.Id, new Uri("http://127.0.0.1:9/hooks"), CancellationToken.None);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await using var site = await HostPage.StartAsync(_bed.Url, key);
        await _bed.AllowDomainsAsync(subscription.Id, $"127.0.0.1:{site.Port}");

        var page = await _browser.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await page.Locator("[data-cmp-widget] input").FillAsync("Where is my order?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Last).ToHaveTextAsync("Ada: you said Where is my order?");
        await Expect(page.Locator("[data-cmp-widget] .messages li.handoff")).ToHaveCountAsync(0);

        await page.Locator("[data-cmp-widget] input").FillAsync("Can I talk to a human, please?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");

        await Expect(page.Locator("[data-cmp-widget] .messages li.handoff")).ToHaveTextAsync(CmpWaldurAdapter.Capabilities.Handoff.HandoffService.VisitorMessage);
        await BrowserSession.ScreenshotAsync(page, "widget-handoff");
        var escalation = Assert.Single((await handoff.EscalatedAsync(subscription.Id, 10, null, CancellationToken.None))!.Data);

        // The buyer follows the webhook's link: the console's Activity tab, scrolled to the conversation's highlighted row.
        var payload = await _bed.QueryAsync(db => db.HandoffDeliveries.AsNoTracking().Select(d => d.Payload).SingleAsync());
        var link = JsonNode.Parse(payload)!["link"]!.GetValue<string>();
        var console = await _browser.NewPageAsync();
        await console.GotoAsync((await _bed.ConsoleLinkAsync(subscription.Id)).ToString());
        await console.GotoAsync(link);
        var row = console.Locator("tr:target");
        await Expect(row).ToHaveCountAsync(1);
        await Expect(row).ToHaveAttributeAsync("id", CmpWaldurAdapter.Capabilities.Handoff.HandoffService.AnchorOf(escalation.Conversation));
        await Expect(row).ToContainTextAsync(escalation.Conversation);
        await Expect(row).ToContainTextAsync("asked for a person");
        await Expect(row).ToHaveCSSAsync("background-color", "rgb(254, 243, 199)");
        await Expect(row).ToBeInViewportAsync();
        await Expect(console.GetByRole(AriaRole.Link, new() { Name = "Activity" })).ToHaveAttributeAsync("aria-current", "page");
        await BrowserSession.ScreenshotAsync(console, "console-escalation-link");
    }

    [Fact]
    public async Task The_activity_tab_pages_older_escalations_and_back_to_the_newest()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 10);
        var pageSize = CmpWaldurAdapter.Web.Pages.Console.IndexModel.ActivityPageSize;
        // Three more than a page; four escalated in one instant straddle the pages' boundary.
        var noon = new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
        var rows = Enumerable.Range(0, pageSize + 3).Select(i => new CmpWaldurAdapter.Capabilities.HandoffConversation
        {
            Id = Guid.NewGuid(),
            SubscriptionId = subscription.Id,
            Conversation = $"conv-{i:D3}",
            EscalatedAt = noon.AddMinutes(Math.Max(i, 4)),
            EscalationReason = "visitor_request",
            CreatedAt = noon,
            UpdatedAt = noon,
        }).ToList();
        await _bed.QueryAsync(db =>
        {
            db.HandoffConversations.AddRange(rows);
            return db.SaveChangesAsync();
        });
        var newestFirst = rows.OrderByDescending(r => r.EscalatedAt).ThenByDescending(r => r.Id).Select(r => r.Conversation).ToList();

        var page = await _browser.NewPageAsync();
        await page.GotoAsync((await _bed.ConsoleLinkAsync(subscription.Id)).ToString());
        await page.GotoAsync(At("console?tab=activity"));
        var conversations = page.Locator("table.escalations tbody tr td:first-child");
        var pages = page.Locator("#escalation-pages");
        await Expect(conversations).ToHaveCountAsync(pageSize);
        Assert.Equal(newestFirst.Take(pageSize), await conversations.AllTextContentsAsync());
        await Expect(pages.GetByRole(AriaRole.Link)).ToHaveTextAsync(["Older"]);

        await pages.GetByRole(AriaRole.Link, new() { Name = "Older" }).ClickAsync();
        await Expect(conversations).ToHaveCountAsync(3);
        Assert.Equal(newestFirst.Skip(pageSize), await conversations.AllTextContentsAsync());
        await Expect(pages.GetByRole(AriaRole.Link)).ToHaveTextAsync(["Newest", "Newer"]);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Activity" })).ToHaveAttributeAsync("aria-current", "page");
        await BrowserSession.ScreenshotAsync(page, "console-activity-older");

        await pages.GetByRole(AriaRole.Link, new() { Name = "Newer" }).ClickAsync();
        await Expect(conversations).ToHaveCountAsync(pageSize);
        Assert.Equal(newestFirst.Take(pageSize), await conversations.AllTextContentsAsync());
        await Expect(pages.GetByRole(AriaRole.Link)).ToHaveTextAsync(["Newest", "Older"]);

        await pages.GetByRole(AriaRole.Link, new() { Name = "Newest" }).ClickAsync();
        await Expect(pages.GetByRole(AriaRole.Link)).ToHaveTextAsync(["Older"]);
        Assert.Equal(newestFirst.Take(pageSize), await conversations.AllTextContentsAsync());
    }

    [Fact]
    public async Task The_widget_answers_on_an_allowed_origin_and_is_refused_on_another()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await using var allowedSite = await HostPage.StartAsync(_bed.Url, key);
        await using var otherSite = await HostPage.StartAsync(_bed.Url, key);
        await _bed.AllowDomainsAsync(subscription.Id, $"127.0.0.1:{allowedSite.Port}");

        var page = await _browser.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{allowedSite.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(page.Locator("[data-cmp-widget] .messages li.bot").First).ToHaveTextAsync("Hi! I am Ada. How can I help?");
        await Expect(page.Locator("[data-cmp-widget] .title")).ToHaveTextAsync("Ada");
        await page.Locator("[data-cmp-widget] input").FillAsync("Where is my order?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Nth(1)).ToHaveTextAsync("Ada: you said Where is my order?");
        await BrowserSession.ScreenshotAsync(page, "widget-allowed-origin");

        // A reload carries the conversation on: the messages are still there and the agent runs in the same session.
        await page.ReloadAsync();
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(page.Locator("[data-cmp-widget] .messages li")).ToHaveCountAsync(3);
        await page.Locator("[data-cmp-widget] input").FillAsync("And when will it arrive?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Nth(2)).ToHaveTextAsync("Ada: you said And when will it arrive?");
        await Expect(page.Locator("[data-cmp-widget] .messages li")).ToHaveCountAsync(5);
        Assert.Single(_bed.Agent.Runs.Select(r => r.SessionId).Distinct());

        var refused = await _browser.NewPageAsync();
        await refused.GotoAsync($"http://localhost:{otherSite.Port}/");
        await refused.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(refused.Locator("[data-cmp-widget] .error")).ToContainTextAsync("not among the widget's allowed domains");
        await Expect(refused.Locator("[data-cmp-widget] .messages li")).ToHaveCountAsync(0);
        await BrowserSession.ScreenshotAsync(refused, "widget-refused-origin");
        Assert.Equal(2, _bed.Agent.Runs.Count);
    }

    [Fact]
    public async Task Markup_in_a_message_and_in_the_agents_answer_shows_as_text_and_runs_nothing()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await using var site = await HostPage.StartAsync(_bed.Url, key);
        await _bed.AllowDomainsAsync(subscription.Id, $"127.0.0.1:{site.Port}");
        const string markup = """<img src=x onerror="window.cmpInjected=1"><a href="javascript:window.cmpInjected=2">open</a>""";

        var page = await _browser.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await page.Locator("[data-cmp-widget] input").FillAsync(markup);
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");

        // The agent echoes what it was sent: the visitor's message and the answer are both shown as the text they are.
        await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Nth(1)).ToHaveTextAsync($"Ada: you said {markup}");
        await Expect(page.Locator("[data-cmp-widget] .messages li").Nth(1)).ToHaveTextAsync(markup);
        await Expect(page.Locator("[data-cmp-widget] .messages img")).ToHaveCountAsync(0);
        await Expect(page.Locator("[data-cmp-widget] .messages a")).ToHaveCountAsync(0);
        Assert.Equal("none", await page.EvaluateAsync<string>("() => String(window.cmpInjected ?? 'none')"));
    }

    [Fact]
    public async Task The_marketplace_tabs_filter_the_cards_and_show_price_and_runs()
    {
        using (var visitor = new HttpClient { BaseAddress = _bed.Url })
        {
            Assert.Equal(HttpStatusCode.OK, (await visitor.PostAsJsonAsync("/try/topic-assistant/messages", new { message = "hi" })).StatusCode);
        }

        var page = await _browser.NewPageAsync();
        await page.GotoAsync(At("marketplace"));
        var cards = page.Locator("li.card");
        await Expect(cards).ToHaveCountAsync(4);
        await Expect(page.Locator("li.card[data-slug=topic-assistant] .meta")).ToHaveTextAsync("1 credits / interaction · 1 runs");
        await Expect(page.Locator("li.card[data-slug=research-agent] .meta")).ToHaveTextAsync("3 credits / interaction · 0 runs");
        var add = await page.Locator("li.card[data-slug=research-agent] a", new() { HasText = "Add" }).GetAttributeAsync("href");
        Assert.Equal($"https://homeport.example.org/marketplace-offering/{_bed.Offerings["research-agent"]}/", add);

        await page.GetByRole(AriaRole.Link, new() { Name = "Assistants" }).ClickAsync();
        await Expect(cards).ToHaveCountAsync(2);
        await Expect(page.Locator("li.card[data-category=assistants]")).ToHaveCountAsync(2);
        await Expect(page.GetByRole(AriaRole.Link, new() { Name = "Assistants" })).ToHaveAttributeAsync("aria-current", "page");
        await BrowserSession.ScreenshotAsync(page, "marketplace-assistants");

        // Keyboard only: focus the Agents tab and follow it with Enter.
        await page.GetByRole(AriaRole.Link, new() { Name = "Agents" }).FocusAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(page.Locator("li.card[data-category=agents]")).ToHaveCountAsync(2);
        await Expect(cards).ToHaveCountAsync(2);

        await page.GetByRole(AriaRole.Link, new() { Name = "Apps" }).ClickAsync();
        await Expect(cards).ToHaveCountAsync(0);
        await Expect(page.Locator(".empty")).ToHaveTextAsync("No offerings match.");

        await page.GetByRole(AriaRole.Link, new() { Name = "All" }).ClickAsync();
        await page.Locator("#q").FillAsync("research");
        await page.Locator("#q").PressAsync("Enter");
        await Expect(cards).ToHaveCountAsync(1);
        await Expect(cards.First).ToHaveAttributeAsync("data-slug", "research-agent");

        await page.Locator("li.card[data-slug=research-agent] a", new() { HasText = "Try" }).ClickAsync();
        await Expect(page).ToHaveURLAsync(At("try/research-agent"));
    }
}
