using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using static Microsoft.Playwright.Assertions;

namespace CmpWaldurAdapter.BrowserTests;

/// <summary>
/// The widget across visitor-token renewals and expiries, in headless Chromium: the adapter's clock is a test clock
/// (and the page's clock Playwright's), so 15-minute tokens and the 2-hour resume window pass at once.
/// </summary>
public sealed class WidgetRenewalTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    // A 1×1 transparent PNG.
    private static readonly byte[] Logo = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==");

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
        await _bed.DisposeAsync();
    }

    [Fact]
    public async Task A_conversation_too_old_to_resume_drops_its_messages_after_a_reload()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await using var site = await HostPage.StartAsync(_bed.Url, key);
        await _bed.AllowDomainsAsync(subscription.Id, $"127.0.0.1:{site.Port}");
        var messages = (IPage page) => page.Locator("[data-cmp-widget] .messages li");

        var page = await _browser.NewPageAsync();
        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?"]);
        await page.Locator("[data-cmp-widget] input").FillAsync("Where is my order?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"]);

        // The token expired longer ago than Web:WidgetConversationResumeWindow (2 h): the reload shows the old
        // messages until the server answers that their conversation does not go on, then only the new welcome.
        _bed.Clock!.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        await page.ReloadAsync();
        await Expect(messages(page)).ToHaveCountAsync(3);
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?"]);
        await page.Locator("[data-cmp-widget] input").FillAsync("Hello again");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again"]);
        await BrowserSession.ScreenshotAsync(page, "widget-conversation-not-resumed");
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());

        // What the tab keeps lost the old messages too: a reload within the window resumes the new conversation only.
        await page.ReloadAsync();
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(page.Locator("[data-cmp-widget] input")).ToBeFocusedAsync();
        await page.Locator("[data-cmp-widget] input").FillAsync("Still there?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(messages(page)).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Hello again", "Ada: you said Hello again", "Still there?", "Ada: you said Still there?"]);
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());
    }

    [Fact]
    public async Task A_conversation_too_old_to_resume_drops_its_messages_on_the_open_page()
    {
        var subscription = await _bed.AddSubscriptionAsync(credits: 20);
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await using var site = await HostPage.StartAsync(_bed.Url, key);
        await _bed.AllowDomainsAsync(subscription.Id, $"127.0.0.1:{site.Port}");
        var page = await _browser.NewPageAsync();
        var messages = page.Locator("[data-cmp-widget] .messages li");
        await page.Clock.InstallAsync(new ClockInstallOptions { TimeDate = Start.UtcDateTime });
        await page.GotoAsync($"http://127.0.0.1:{site.Port}/");
        await page.Locator("[data-cmp-widget] .launcher").ClickAsync();
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?"]);
        await page.Locator("[data-cmp-widget] input").FillAsync("Where is my order?");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(messages).ToHaveTextAsync(["Hi! I am Ada. How can I help?", "Where is my order?", "Ada: you said Where is my order?"]);

        // The tab stays open past the token's 15 minutes and the 2-hour resume window: the next message renews the
        // token into a new conversation, which shows none of the old one's messages, now or after a reload.
        _bed.Clock!.Advance(TimeSpan.FromMinutes(15) + TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        await page.Clock.FastForwardAsync("02:16:00");
        await page.Locator("[data-cmp-widget] input").FillAsync("Hello again");
        await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
        await Expect(messages).ToHaveTextAsync(["Hello again", "Ada: you said Hello again"]);
        Assert.Equal(2, _bed.Agent.Runs.Select(r => r.SessionId).Distinct().Count());
        await page.ReloadAsync();
        await Expect(messages).ToHaveTextAsync(["Hello again", "Ada: you said Hello again"]);
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
        var key = await _bed.PublishableKeyAsync(subscription.Id);
        await using var site = await HostPage.StartAsync(_bed.Url, key);
        await _bed.AllowDomainsAsync(subscription.Id, $"127.0.0.1:{site.Port}");

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
        await Expect(logo).ToHaveAttributeAsync("src", new Uri(_bed.Url, $"web/logo/{subscription.Id}").ToString());

        // Each message after the 15-minute token ran out renews it first (on both clocks); the logo stays one.
        for (var renewal = 1; renewal <= 2; renewal++)
        {
            _bed.Clock!.Advance(TimeSpan.FromMinutes(16));
            await page.Clock.FastForwardAsync("16:00");
            await page.Locator("[data-cmp-widget] input").FillAsync($"question {renewal}");
            await page.Locator("[data-cmp-widget] input").PressAsync("Enter");
            await Expect(page.Locator("[data-cmp-widget] .messages li.bot").Last).ToHaveTextAsync($"Ada: you said question {renewal}");
            Assert.Equal(1 + renewal, Volatile.Read(ref sessions));
            await Expect(logo).ToHaveCountAsync(1);
        }

        await BrowserSession.ScreenshotAsync(page, "widget-logo-after-renewals");
        Assert.Single(_bed.Agent.Runs.Select(r => r.SessionId).Distinct());
    }
}
