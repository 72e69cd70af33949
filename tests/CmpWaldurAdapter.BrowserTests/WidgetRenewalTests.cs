using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace CmpWaldurAdapter.BrowserTests;

/// <summary>
/// The widget across visitor-token renewals and expiries, and messages whose send failed, in headless Chromium: the
/// adapter's clock is a test clock (and the page's clock Playwright's), so 15-minute tokens and the 2-hour resume
/// window pass at once.
/// </summary>
public sealed class WidgetRenewalTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    // A 1×1 transparent PNG.
    private static readonly byte[] Logo = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==");

    private readonly List<HostPage> _sites = [];
    private BuyerWebTestBed _bed = null!;
    private BrowserSession _browser = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(now: Start);
        await _bed.StartAsync();
        _browser = await BrowserSession.LaunchAsync();
    }

    public async Task DisposeAsync()
    {
        await _browser.DisposeAsync();
        foreach (var site in _sites)
        {
            await site.DisposeAsync();
        }

        await _bed.DisposeAsync();
    }

    [Fact]
    public async Task A_conversation_too_old_to_resume_drops_its_messages_after_a_reload()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false);
        var messages = Messages(page);
        await OpenChatAndAskAsync(page);

        // The token expired longer ago than Web:WidgetConversationResumeWindow (2 h): the reload shows the old
        // messages until the server answers that their conversation does not go on, then only the new welcome.
        _bed.Clock!.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        await page.ReloadAsync();
        await Expect(messages).ToHaveCountAsync(3);
        await OpenChatAsync(page);
        await SendAsync(page, "Hello again");
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again"]);
        await BrowserSession.ScreenshotAsync(page, "widget-conversation-not-resumed");
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());

        // What the tab keeps lost the old messages too: a reload within the window resumes the new conversation only.
        await page.ReloadAsync();
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(page.Locator("[data-cmp-widget] input")).ToBeFocusedAsync();
        await SendAsync(page, "Still there?");
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again", "Still there?", "Ada: you said Still there?"]);
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());
    }

    [Fact]
    public async Task A_conversation_too_old_to_resume_drops_its_messages_on_the_open_page()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: true);
        var messages = Messages(page);
        await OpenChatAndAskAsync(page);

        // The tab stays open past the token's 15 minutes and the 2-hour resume window: the next message renews the
        // token into a new conversation, which opens with its welcome and shows none of the old one's messages, now
        // or after a reload.
        await PassResumeWindowAsync(page);
        await SendAsync(page, "Hello again");
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again"]);
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());
        await page.ReloadAsync();
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again"]);
    }

    [Fact]
    public async Task A_message_sent_before_the_first_session_answer_comes_after_the_welcome_in_one_conversation()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false);
        var messages = Messages(page);

        await HoldSessionAnswersAsync(page);
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await SendAsync(page, "Where is my order?");
        await Expect(messages).ToHaveTextAsync(["Where is my order?", "…"]);
        await AnswerHeldSessionsNewestFirstAsync(page);
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"]);

        // The message went into the conversation the widget carries on, and the tab keeps the same order.
        await SendAsync(page, "Still there?");
        string[] conversation = ["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?", "Still there?", "Ada: you said Still there?"];
        await Expect(messages).ToHaveTextAsync(conversation);
        Assert.Single(_bed.Agent.Runs.Select(r => r.SessionId).Distinct());
        await page.ReloadAsync();
        await Expect(messages).ToHaveTextAsync(conversation);
    }

    [Fact]
    public async Task A_message_sent_while_renewing_into_a_new_conversation_survives_closing_and_reopening_the_chat()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: true);
        var messages = Messages(page);
        await OpenChatAndAskAsync(page);

        // Past the resume window, the next message renews into a new conversation; while that renewal is on its way
        // the visitor closes and reopens the chat, and the answers come in the worst order.
        await PassResumeWindowAsync(page);
        await HoldSessionAnswersAsync(page);
        await SendAsync(page, "Hello again");
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?", "Hello again", "…"]);
        await page.Locator("[data-cmp-widget] .close").ClickAsync();
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(page.Locator("[data-cmp-widget] .panel")).ToBeVisibleAsync();
        await AnswerHeldSessionsNewestFirstAsync(page);

        string[] conversation = ["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again"];
        await Expect(messages).ToHaveTextAsync(conversation);
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());
        await page.ReloadAsync();
        await Expect(messages).ToHaveTextAsync(conversation);
    }

    [Fact]
    public async Task A_message_whose_send_failed_is_sent_once_more_by_its_retry_control()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false);
        var messages = Messages(page);
        var error = Error(page);
        var retry = Retry(page);
        await OpenChatAsync(page);

        // The first send finds the network down, the first retry an adapter answering 503; the second gets through.
        var failures = new Queue<Func<IRoute, Task>>([
            route => route.AbortAsync(),
            route => route.FulfillAsync(new RouteFulfillOptions
            {
                Status = 503,
                Headers = new Dictionary<string, string> { ["Access-Control-Allow-Origin"] = "*" },
                ContentType = "application/json",
                Body = """{"error":{"message":"The agent is not available right now; nothing was charged."}}""",
            }),
        ]);
        await page.RouteAsync("**/widget/v1/chat", route =>
            route.Request.Method == "POST" && failures.TryDequeue(out var fail) ? fail(route) : route.FallbackAsync());

        await SendAsync(page, "Where is my order?");
        await Expect(error).ToHaveTextAsync("The assistant cannot be reached right now.");
        await Expect(retry).ToHaveAccessibleNameAsync("Retry sending this message");
        await BrowserSession.ScreenshotAsync(page, "widget-send-failed");

        // Reached by keyboard from the message box.
        await Expect(page.Locator("[data-cmp-widget] input")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Shift+Tab");
        await Expect(retry).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Enter");
        await Expect(error).ToHaveTextAsync("The agent is not available right now; nothing was charged.");
        await Expect(retry).ToHaveCountAsync(1);
        Assert.Empty(_bed.Agent.Runs);

        await retry.ClickAsync();
        string[] conversation = ["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"];
        await Expect(messages).ToHaveTextAsync(conversation);
        await Expect(retry).ToHaveCountAsync(0);
        await Expect(error).ToBeEmptyAsync();
        Assert.Equal(["Where is my order?"], _bed.Agent.Runs.Select(r => r.Input));

        await page.ReloadAsync();
        await Expect(messages).ToHaveTextAsync(conversation);
    }

    [Fact]
    public async Task A_message_whose_session_is_refused_is_sent_once_more_in_a_new_session_without_bothering_the_visitor()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false);
        await OpenChatAsync(page);

        // The adapter refuses the session the widget holds, as it refuses a token an older adapter issued.
        var refused = 0;
        await page.RouteAsync("**/widget/v1/chat", route =>
            route.Request.Method == "POST" && Interlocked.Increment(ref refused) == 1
                ? route.FulfillAsync(new RouteFulfillOptions
                {
                    Status = 401,
                    Headers = new Dictionary<string, string> { ["Access-Control-Allow-Origin"] = "*" },
                    ContentType = "application/json",
                    Body = """{"error":{"message":"The widget session is missing or has expired; reload the page.","type":"invalid_request_error","code":"invalid_visitor_token","param":null}}""",
                })
                : route.FallbackAsync());

        await SendAsync(page, "Where is my order?");

        await Expect(Messages(page).Last).ToHaveTextAsync("Ada: you said Where is my order?");
        await Expect(Error(page)).ToBeEmptyAsync();
        await Expect(Retry(page)).ToHaveCountAsync(0);
        Assert.Equal(2, refused);
        Assert.Equal(["Where is my order?"], _bed.Agent.Runs.Select(r => r.Input));
    }

    [Fact]
    public async Task A_retry_of_a_message_whose_answer_was_lost_shows_that_answer_and_the_organization_is_charged_once()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        var page = await OpenSiteAsync(await SiteAsync(subscription.Id), pageClock: false);
        var messages = Messages(page);
        var error = Error(page);
        var retry = Retry(page);
        await OpenChatAsync(page);

        // The adapter answers (and charges) the message, but its answer never reaches the page.
        await LoseTheNextAnswerAsync(page);
        await SendAsync(page, "Where is my order?");
        await Expect(error).ToHaveTextAsync("The assistant cannot be reached right now.");
        Assert.Single(_bed.Agent.Runs);
        Assert.Equal(1, await ChargesAsync(subscription.Id));

        await retry.ClickAsync();
        string[] conversation = ["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"];
        await Expect(messages).ToHaveTextAsync(conversation);
        await Expect(error).ToBeEmptyAsync();
        Assert.Single(_bed.Agent.Runs);
        Assert.Equal(1, await ChargesAsync(subscription.Id));

        // The same with a reload before the Retry: the tab keeps the message's id with it.
        await LoseTheNextAnswerAsync(page);
        await SendAsync(page, "Can I pay in gold?");
        await Expect(retry).ToHaveCountAsync(1);
        await page.ReloadAsync();
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await retry.ClickAsync();
        await Expect(messages).ToHaveTextAsync([.. conversation, "Can I pay in gold?", "Ada: you said Can I pay in gold?"]);
        Assert.Equal(["Where is my order?", "Can I pay in gold?"], _bed.Agent.Runs.Select(r => r.Input));
        Assert.Equal(2, await ChargesAsync(subscription.Id));
        var charged = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.SubscriptionId == subscription.Id && e.Kind == LedgerEntryKind.Charge).SumAsync(e => e.Credits));
        Assert.Equal(20 - charged, (await _bed.Services.GetRequiredService<CreditLedger>().BalanceAsync(subscription.CustomerId)).Available);
    }

    [Fact]
    public async Task A_message_whose_send_failed_still_offers_its_retry_after_a_reload()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false);
        var messages = Messages(page);
        var error = Error(page);
        var retry = Retry(page);
        await OpenChatAsync(page);
        await LoseTheNextMessageAsync(page);
        await SendAsync(page, "Where is my order?");
        await Expect(retry).ToHaveCountAsync(1);

        // The reloaded page shows the message as it left it: failed, with why and its retry.
        await page.ReloadAsync();
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(retry).ToHaveAccessibleNameAsync("Retry sending this message");
        await Expect(error).ToHaveTextAsync("The assistant cannot be reached right now.");
        await retry.ClickAsync();
        string[] conversation = ["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"];
        await Expect(messages).ToHaveTextAsync(conversation);
        await Expect(error).ToBeEmptyAsync();
        Assert.Single(_bed.Agent.Runs.Select(r => r.SessionId).Distinct());

        // Sent, it is no longer failed after the next reload either.
        await page.ReloadAsync();
        await Expect(messages).ToHaveTextAsync(conversation);
        await Expect(retry).ToHaveCountAsync(0);
    }

    [Fact]
    public async Task A_retry_after_a_rate_limit_waits_out_its_retry_after()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: true, credits: 100);
        var error = Error(page);
        var retry = Retry(page);
        var lastAnswer = page.Locator("[data-cmp-widget] .messages li.bot").Last;
        await OpenChatAndAskAsync(page);

        // The visitor sends as many messages as the adapter takes in a minute (its clock stands at a minute's start),
        // and one more: refused with Retry-After: 60. From then on, the page's time moves only when the test says.
        var perMinute = _bed.Services.GetRequiredService<IOptions<WebOptions>>().Value.WidgetMessagesPerMinute;
        for (var message = 2; message <= perMinute; message++)
        {
            await SendAsync(page, $"question {message}");
            await Expect(lastAnswer).ToHaveTextAsync($"Ada: you said question {message}");
        }

        await page.Clock.PauseAtAsync(Start.AddMinutes(1).UtcDateTime);
        await SendAsync(page, "One more");
        await Expect(error).ToHaveTextAsync("Too many messages; wait 60 s.");
        await Expect(retry).ToHaveTextAsync("Retry in 60 s");
        await Expect(retry).ToHaveAccessibleNameAsync("Retry sending this message in 60 s");
        await Expect(retry).ToBeDisabledAsync();

        await page.Clock.FastForwardAsync("00:59");
        await Expect(retry).ToHaveTextAsync("Retry in 1 s");
        await Expect(retry).ToBeDisabledAsync();
        await BrowserSession.ScreenshotAsync(page, "widget-retry-waits-out-rate-limit");

        await page.Clock.FastForwardAsync("00:01");
        await Expect(retry).ToHaveTextAsync("Retry");
        await Expect(retry).ToBeEnabledAsync();
        _bed.Clock!.Advance(TimeSpan.FromMinutes(1));
        await retry.ClickAsync();
        await Expect(lastAnswer).ToHaveTextAsync("Ada: you said One more");
        await Expect(error).ToBeEmptyAsync();
        Assert.Equal(perMinute + 1, _bed.Agent.Runs.Count);
    }

    [Fact]
    public async Task A_message_sent_before_the_first_session_answer_takes_the_agents_colour_when_it_arrives()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false, configuration: new JsonObject { ["agent_name"] = "Ada", ["brand_colour"] = "#16a34a" });
        var question = page.Locator("[data-cmp-widget] .messages li.user");

        await HoldSessionAnswersAsync(page);
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await SendAsync(page, "Where is my order?");
        await Expect(question).ToHaveCSSAsync("background-color", "rgb(37, 99, 235)"); // the default until the answer
        await AnswerHeldSessionsNewestFirstAsync(page);
        await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Last).ToHaveTextAsync("Ada: you said Where is my order?");
        await Expect(page.Locator("[data-cmp-widget] .send")).ToHaveCSSAsync("background-color", "rgb(22, 163, 74)");
        await Expect(question).ToHaveCSSAsync("background-color", "rgb(22, 163, 74)");
    }

    [Fact]
    public async Task A_retry_refused_for_want_of_credits_offers_no_further_retry()
    {
        var page = await OpenNewSubscriptionsSiteAsync(pageClock: false, credits: 0);
        var error = Error(page);
        var retry = Retry(page);
        await OpenChatAsync(page);

        // A failure another try may cure offers the retry; the adapter then refuses for want of credits, which
        // another try cannot cure.
        await LoseTheNextMessageAsync(page);
        await SendAsync(page, "Where is my order?");
        await Expect(error).ToHaveTextAsync("The assistant cannot be reached right now.");
        await retry.ClickAsync();
        await Expect(error).ToContainTextAsync("not enough credits");
        await Expect(Messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?"]);
        await Expect(retry).ToHaveCountAsync(0);

        // Nor does a message the adapter refuses at once.
        await SendAsync(page, "Anyone there?");
        await Expect(page.Locator("[data-cmp-widget] .send")).ToBeEnabledAsync();
        await Expect(Messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?", "Anyone there?"]);
        await Expect(error).ToContainTextAsync("not enough credits");
        await Expect(retry).ToHaveCountAsync(0);
        Assert.Empty(_bed.Agent.Runs);
    }

    /// <summary>A new subscription's site, opened in a new tab (see <see cref="OpenSiteAsync"/>).</summary>
    private async Task<IPage> OpenNewSubscriptionsSiteAsync(bool pageClock, long credits = 20, JsonObject? configuration = null) =>
        await OpenSiteAsync(await SiteAsync((await _bed.AddSubscriptionAsync(credits: credits, configuration: configuration)).Id), pageClock);

    /// <summary>A site allowed to embed the subscription's widget, serving a page with it.</summary>
    /// <summary>The page's next chat message fails as if the adapter could not be reached; those after it go through.</summary>
    private static Task LoseTheNextMessageAsync(IPage page)
    {
        var failed = false;
        return page.RouteAsync("**/widget/v1/chat", route =>
        {
            if (route.Request.Method != "POST" || failed)
            {
                return route.FallbackAsync();
            }

            failed = true;
            return route.AbortAsync();
        });
    }

    /// <summary>
    /// The page's next chat message reaches the adapter, which answers (and charges) it, but the answer is lost on its
    /// way back (a dropped connection, a proxy's timeout); those after it go through.
    /// </summary>
    private static Task LoseTheNextAnswerAsync(IPage page)
    {
        var lost = false;
        return page.RouteAsync("**/widget/v1/chat", async route =>
        {
            if (route.Request.Method != "POST" || lost)
            {
                await route.FallbackAsync();
                return;
            }

            lost = true;
            await route.FetchAsync();
            await route.AbortAsync();
        });
    }

    private Task<int> ChargesAsync(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == subscriptionId && e.Kind == LedgerEntryKind.Charge));

    private async Task<HostPage> SiteAsync(Guid subscriptionId, bool requireCorp = false)
    {
        var site = await HostPage.StartAsync(_bed.Url, await _bed.PublishableKeyAsync(subscriptionId), requireCorp);
        _sites.Add(site);
        await _bed.AllowDomainsAsync(subscriptionId, $"127.0.0.1:{site.Port}");
        return site;
    }

    /// <summary>The site's page in a new tab; with <paramref name="pageClock"/>, on Playwright's clock from <see cref="Start"/>.</summary>
    private async Task<IPage> OpenSiteAsync(HostPage site, bool pageClock)
    {
        var page = await _browser.NewPageAsync();
        if (pageClock)
        {
            await page.Clock.InstallAsync(new ClockInstallOptions { TimeDate = Start.UtcDateTime });
        }

        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        return page;
    }

    /// <summary>Opens the chat and asks one question; the conversation shows the welcome, the question and its answer.</summary>
    private static async Task OpenChatAndAskAsync(IPage page)
    {
        await OpenChatAsync(page);
        await SendAsync(page, "Where is my order?");
        await Expect(Messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"]);
    }

    /// <summary>On both clocks, past the 15-minute token and the 2-hour resume window after it.</summary>
    private async Task PassResumeWindowAsync(IPage page)
    {
        _bed.Clock!.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        await page.Clock.FastForwardAsync("02:16:00");
    }

    /// <summary>Opens the chat and waits for the welcome.</summary>
    private static async Task OpenChatAsync(IPage page)
    {
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(Messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?"]);
    }

    private static ILocator Messages(IPage page) => page.Locator("[data-cmp-widget] .messages li");

    private static ILocator Error(IPage page) => page.Locator("[data-cmp-widget] .error");

    private static ILocator Retry(IPage page) => page.Locator("[data-cmp-widget] .messages li.user button.retry");

    private static async Task SendAsync(IPage page, string text)
    {
        await page.Locator("[data-cmp-widget] input").FillAsync(text);
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
    }

    /// <summary>
    /// Holds back the answers to the page's session starts from now on, until <see cref="AnswerHeldSessionsNewestFirstAsync"/>.
    /// Each start still reaches the adapter at once; only the widget's view of the answer waits.
    /// </summary>
    private static Task HoldSessionAnswersAsync(IPage page) => page.EvaluateAsync("""
        () => {
          const fetch = window.fetch;
          window.unheldFetch = fetch;
          window.heldSessionAnswers = [];
          window.fetch = (url, init) => {
            const answer = fetch(url, init);
            if (!String(url).endsWith('/widget/v1/session')) { return answer; }
            // Read ahead, so that once let through the widget handles the answer without waiting on the network.
            const read = answer.then(r => r.json().then(data => ({ ok: r.ok, status: r.status, json: () => Promise.resolve(data) })));
            return new Promise((resolve, reject) => window.heldSessionAnswers.push(() => read.then(resolve, reject)));
          };
        }
        """);

    /// <summary>
    /// Lets the held answers through, the latest start's first, the worst order for the widget: each is handled in
    /// full before the next arrives (one evaluation each, and the widget's handling needs no further network).
    /// </summary>
    private static async Task AnswerHeldSessionsNewestFirstAsync(IPage page)
    {
        var held = await page.EvaluateAsync<int>("() => { window.fetch = window.unheldFetch; return window.heldSessionAnswers.length; }");
        Assert.True(held > 0);
        for (var answer = held - 1; answer >= 0; answer--)
        {
            await page.EvaluateAsync("answer => window.heldSessionAnswers[answer]()", answer);
        }
    }

    [Fact]
    public async Task On_a_cross_origin_isolated_site_the_widget_and_the_agents_logo_load()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription.Id, s =>
        {
            s.Logo = Logo;
            s.LogoContentType = "image/png";
        }, CancellationToken.None);
        var site = await SiteAsync(subscription.Id, requireCorp: true);

        var page = await _browser.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(page.Locator("[data-cmp-widget] .title")).ToHaveTextAsync("Ada");
        var logo = page.Locator("[data-cmp-widget] .head img");
        await Expect(logo).ToHaveCountAsync(1);

        // An image the site's policy blocked ends loading with no pixels (naturalWidth 0).
        await Expect(logo).ToHaveJSPropertyAsync("complete", true);
        Assert.Equal(1, await logo.EvaluateAsync<int>("img => img.naturalWidth"));
    }

    [Fact]
    public async Task The_agents_logo_is_shown_once_across_token_renewals()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscription.Id, s =>
        {
            s.Logo = Logo;
            s.LogoContentType = "image/png";
        }, CancellationToken.None);
        var site = await SiteAsync(subscription.Id);

        var page = await _browser.NewPageAsync();
        var sessions = 0;
        page.Request += (_, request) =>
        {
            if (request.Method == "POST" && request.Url.EndsWith("/widget/v1/session", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref sessions);
            }
        };
        await page.Clock.InstallAsync(new ClockInstallOptions { TimeDate = Start.UtcDateTime });
        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        var logo = page.Locator("[data-cmp-widget] .head img");
        await Expect(page.Locator("[data-cmp-widget] .title")).ToHaveTextAsync("Ada");
        await Expect(logo).ToHaveCountAsync(1);
        var versioned = (await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(subscription.Id, CancellationToken.None)).LogoPath()!;
        await Expect(logo).ToHaveAttributeAsync("src", new Uri(_bed.Url, versioned).ToString());

        // Each message after the 15-minute token ran out renews it first (on both clocks); the logo stays one.
        for (var renewal = 1; renewal <= 2; renewal++)
        {
            _bed.Clock!.Advance(TimeSpan.FromMinutes(16));
            await page.Clock.FastForwardAsync("16:00");
            await SendAsync(page, $"question {renewal}");
            await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Last).ToHaveTextAsync($"Ada: you said question {renewal}");
            Assert.Equal(1 + renewal, Volatile.Read(ref sessions));
            await Expect(logo).ToHaveCountAsync(1);
        }

        await BrowserSession.ScreenshotAsync(page, "widget-logo-after-renewals");
        Assert.Single(_bed.Agent.Runs.Select(r => r.SessionId).Distinct());
    }
}
