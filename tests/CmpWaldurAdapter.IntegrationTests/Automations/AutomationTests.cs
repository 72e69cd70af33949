using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Capabilities.Automations;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Automations;

/// <summary>The ticket triage automation: runs by API and by schedule, each charged its price once.</summary>
public sealed partial class AutomationTests : IAsyncLifetime
{
    private const string Triage = """{"category": "billing", "priority": "high", "reply": "We are on it."}""";

    private static JsonObject Form => JsonNode.Parse("""
        {
          "order": ["categories", "instructions", "schedule", "schedule_input"],
          "options": {
            "categories": { "type": "text", "label": "Categories", "required": true },
            "instructions": { "type": "text", "label": "Extra instructions" },
            "schedule": { "type": "string", "label": "Schedule (cron)" },
            "schedule_input": { "type": "text", "label": "Input of scheduled runs (JSON)" }
          }
        }
        """)!.AsObject();

    private readonly BeforeStatement _meanwhile = new();
    private ChatTestBed _bed = null!;
    private Guid _offering;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync((tenants, settings) =>
    {
        _offering = tenants.Waldur.AddOffering("Ticket Triage Automation", Form, Form);
        settings["Offerings:1:Uuid"] = _offering.ToString();
        settings["Offerings:1:Slug"] = "ticket-triage-automation";
        settings["Automations:ScheduleCheckInterval"] = "01:00:00"; // the tests run the scheduler themselves
        settings["Automations:MissedFiringGrace"] = "02:00:00"; // longer than the check interval
    }, services => services.AddDatabaseInterceptor(DatabaseProvider.Sqlite, _meanwhile));

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_triggered_run_answers_the_flows_output_and_is_charged_once_and_listed()
    {
        var me = await SubscribeAsync();
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.ScriptNextAnswers(Triage);

        var response = await http.PostAsync("/v1/runs", ChatTestBed.Json("""{"input": {"subject": "Double charge", "body": "I was charged twice."}}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var run = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal("succeeded", run["status"]!.GetValue<string>());
        Assert.Equal("api", run["trigger"]!.GetValue<string>());
        Assert.Equal("billing", run["output"]!["category"]!.GetValue<string>());
        Assert.Equal(3, run["credits_charged"]!.GetValue<long>());
        Assert.Equal(new LedgerState(97, 0, 1, 3), await _bed.LedgerAsync(me.Customer));
        var flowRun = Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal("Double charge", JsonNode.Parse(flowRun.Input!)!["subject"]!.GetValue<string>());
        Assert.Equal("billing, shipping", flowRun.Tweaks["Prompt-cmp01"]!["categories"]!.GetValue<string>());
        Assert.Equal("automation_credits", await ComponentOfChargeAsync(me.Customer));

        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/runs"))!["data"]!.AsArray();
        Assert.Equal(run["id"]!.GetValue<string>(), Assert.Single(listed)!["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_automations_key_asking_for_a_chat_answer_gets_a_404_and_is_charged_nothing()
    {
        var me = await SubscribeAsync();
        using var http = _bed.Http(me.Key);

        var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"messages": [{"role": "user", "content": "Hello"}]}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal("model_not_found", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    [Fact]
    public async Task The_automations_console_chat_is_a_404_and_charged_nothing()
    {
        var me = await SubscribeAsync();

        var answer = await _bed.Services.GetRequiredService<CmpWaldurAdapter.Web.IPageChat>().AnswerAsync(me.Subscription, "console", "run-tab", "Hello", CancellationToken.None);

        Assert.Equal((404, (string?)null), (answer.Status, answer.Text));
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    [Fact]
    public async Task A_replayed_idempotency_key_returns_the_same_run_and_charges_once()
    {
        var me = await SubscribeAsync();
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.ScriptNextAnswers(Triage, Triage);
        const string body = """{"input": {"subject": "Where is my parcel?"}}""";

        var first = await SendAsync(http, body, "ticket-42");
        var second = await SendAsync(http, body, "ticket-42");
        var other = await SendAsync(http, """{"input": {"subject": "something else"}}""", "ticket-42");

        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal("true", second.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(await first.Content.ReadAsStringAsync(), await second.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.UnprocessableEntity, other.StatusCode);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(97, 0, 1, 3), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task An_idempotency_key_whose_run_died_holding_its_price_is_refused_while_it_may_run_then_taken_over_and_charged_once()
    {
        var me = await SubscribeAsync();
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.ScriptNextAnswers(Triage);
        const string body = """{"input": {"subject": "Lost parcel"}}""";
        // Chat:RunTimeout (2 minutes, the flow run's limit) plus the margin has not passed for the first, has for the second.
        await _bed.LeaveUnfinishedAsync(me, "recent", body, TimeSpan.FromMinutes(2), CmpWaldurAdapter.Chat.IdempotencyStore.RunsScope);
        var requestId = await _bed.LeaveUnfinishedAsync(me, "dead", body, TimeSpan.FromMinutes(2) + CmpWaldurAdapter.Chat.IdempotencyStore.AbandonMargin + TimeSpan.FromSeconds(5), CmpWaldurAdapter.Chat.IdempotencyStore.RunsScope);
        var ledger = _bed.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>();
        Assert.True((await ledger.ReserveAsync(me.Customer, me.Subscription.Id, me.Subscription.OfferingUuid, CmpWaldurAdapter.Core.Catalogue.ActionClass.AutomationRun, 3, 1, requestId)).IsHeld);

        var recent = await SendAsync(http, body, "recent");
        var retried = await SendAsync(http, body, "dead");

        Assert.Equal(HttpStatusCode.Conflict, recent.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(3, JsonNode.Parse(await retried.Content.ReadAsStringAsync())!["credits_charged"]!.GetValue<long>());
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(97, 0, 1, 3), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_schedule_runs_each_firing_once_with_its_configured_input()
    {
        var me = await SubscribeAsync(schedule: "0 0 8 * * ?");
        using var http = _bed.Http(me.Key);
        var scheduler = _bed.Services.GetRequiredService<AutomationScheduler>();
        var morning = new DateTimeOffset(2026, 3, 2, 8, 0, 0, TimeSpan.Zero);

        Assert.Equal(0, await scheduler.RunDueAsync(morning.AddMinutes(-1), CancellationToken.None));
        Assert.Equal(1, await scheduler.RunDueAsync(morning.AddSeconds(30), CancellationToken.None));
        Assert.Equal(0, await scheduler.RunDueAsync(morning.AddMinutes(1), CancellationToken.None));
        Assert.Equal(0, await scheduler.RunDueAsync(morning.AddHours(3), CancellationToken.None)); // past the grace: nothing
        Assert.Equal(1, await scheduler.RunDueAsync(morning.AddDays(1).AddMinutes(2), CancellationToken.None));

        var runs = JsonNode.Parse(await http.GetStringAsync("/v1/runs"))!["data"]!.AsArray();
        Assert.Equal(2, runs.Count);
        Assert.All(runs, r => Assert.Equal("schedule", r!["trigger"]!.GetValue<string>()));
        Assert.Equal(morning.AddDays(1), runs[0]!["scheduled_for"]!.GetValue<DateTimeOffset>());
        Assert.Equal(morning, runs[1]!["scheduled_for"]!.GetValue<DateTimeOffset>());
        Assert.All(_bed.Tenants.Langflow.Runs, r => Assert.Equal("daily", JsonNode.Parse(r.Input!)!["subject"]!.GetValue<string>()));
        Assert.Equal(new LedgerState(94, 0, 2, 6), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_firing_another_replica_runs_between_the_schedulers_look_and_its_insert_is_left_to_it_with_no_database_error()
    {
        var me = await SubscribeAsync(schedule: "0 0 8 * * ?");
        var scheduler = _bed.Services.GetRequiredService<AutomationScheduler>();
        var morning = new DateTimeOffset(2026, 3, 2, 8, 0, 0, TimeSpan.Zero);
        var theirs = Guid.NewGuid();
        // The scheduler has found the firing not run yet; just before it records its run, another replica's scheduler does.
        _meanwhile.Stage(RunInsert(), () => _bed.Tenants.QueryAsync(db =>
        {
            db.AutomationRuns.Add(new AutomationRun
            {
                Id = theirs, SubscriptionId = me.Subscription.Id, Trigger = "schedule", Status = AutomationService.Running, Input = "{}", ScheduledFor = morning, CreatedAt = morning,
            });
            return db.SaveChangesAsync();
        }));

        Assert.Equal(0, await scheduler.RunDueAsync(morning.AddSeconds(30), CancellationToken.None));

        Assert.Equal(1, _meanwhile.Ran);
        Assert.Equal(theirs, await _bed.Tenants.QueryAsync(db => db.AutomationRuns.Where(r => r.SubscriptionId == me.Subscription.Id).Select(r => r.Id).SingleAsync()));
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer)); // the run and its price are the other replica's
        Assert.Empty(_bed.Tenants.Logs.DatabaseErrors());
    }

    [Fact]
    public async Task A_run_whose_flow_fails_is_listed_as_failed_and_costs_nothing()
    {
        var me = await SubscribeAsync();
        using var http = _bed.Http(me.Key);
        _bed.Tenants.Langflow.Fail("POST", "/api/v1/run/.*", 500, times: 1);

        var response = await http.PostAsync("/v1/runs", ChatTestBed.Json("""{"input": {"subject": "Refund"}}"""));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var run = Assert.Single(JsonNode.Parse(await http.GetStringAsync("/v1/runs"))!["data"]!.AsArray())!;
        Assert.Equal("failed", run["status"]!.GetValue<string>());
        Assert.Equal(0, run["credits_charged"]!.GetValue<long>());
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_run_its_stopped_adapter_left_running_is_marked_failed_once_it_cannot_finish_and_costs_nothing()
    {
        var me = await SubscribeAsync();
        var now = DateTimeOffset.UtcNow;
        // What a killed process leaves: the run's row and the hold of its price. Chat:RunTimeout is 2 minutes.
        var dead = await AddRunAsync(me.Subscription.Id, now - TimeSpan.FromMinutes(2) - AutomationService.InterruptedMargin - TimeSpan.FromSeconds(30), running: true);
        var ledger = _bed.Services.GetRequiredService<CmpWaldurAdapter.Credits.CreditLedger>();
        Assert.True((await ledger.ReserveAsync(me.Customer, me.Subscription.Id, me.Subscription.OfferingUuid, CmpWaldurAdapter.Core.Catalogue.ActionClass.AutomationRun, 3, 1, "the dead run")).IsHeld);
        // Within the run timeout and margin, a run may still be finishing on another replica.
        var live = await AddRunAsync(me.Subscription.Id, now - TimeSpan.FromMinutes(2) - AutomationService.InterruptedMargin + TimeSpan.FromSeconds(30), running: true);

        await ActivatorUtilities.CreateInstance<RunScheduledAutomationsJob>(_bed.Services).Execute(null!, CancellationToken.None);

        using var http = _bed.Http(me.Key);
        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/runs"))!["data"]!.AsArray().ToDictionary(r => r!["id"]!.GetValue<string>());
        var failed = listed[RunId(dead.Id)]!;
        Assert.Equal("failed", failed["status"]!.GetValue<string>());
        Assert.Contains("interrupted", failed["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(0, failed["credits_charged"]!.GetValue<long>());
        Assert.NotNull(failed["finished"]);
        Assert.Equal("running", listed[RunId(live.Id)]!["status"]!.GetValue<string>());
        Assert.Equal(0, await _bed.Services.GetRequiredService<AutomationService>().FailInterruptedAsync(DateTimeOffset.UtcNow, CancellationToken.None));
        Assert.Equal(new LedgerState(100, 3, 0, 0), await _bed.LedgerAsync(me.Customer)); // the hold is released when it expires
    }

    [Fact]
    public async Task A_run_without_input_is_refused_and_costs_nothing()
    {
        var me = await SubscribeAsync();
        using var http = _bed.Http(me.Key);

        var response = await http.PostAsync("/v1/runs", ChatTestBed.Json("""{"inputs": 1}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task Paging_walks_every_run_once_newest_first_even_when_started_in_the_same_instant()
    {
        var me = await SubscribeAsync();
        var someoneElse = await SubscribeAsync();
        var noon = new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
        // Seven runs, four started in one instant so that pages of two split the tie; another subscription's run is never listed.
        var runs = new List<CmpWaldurAdapter.Capabilities.AutomationRun>();
        foreach (var minutes in new[] { 3, 1, 1, 1, 1, 0, 7 })
        {
            runs.Add(await AddRunAsync(me.Subscription.Id, noon.AddMinutes(minutes)));
        }

        await AddRunAsync(someoneElse.Subscription.Id, noon.AddMinutes(1));
        var expected = runs.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id).Select(r => RunId(r.Id)).ToList();
        using var http = _bed.Http(me.Key);

        var (walked, pages) = await ListPages.WalkAsync(http, "/v1/runs", limit: 2);

        Assert.Equal(expected, walked);
        Assert.Equal([2, 2, 2, 1], pages.Select(p => p["data"]!.AsArray().Count));
        Assert.Equal([true, true, true, false], pages.Select(p => p["has_more"]!.GetValue<bool>()));
        var whole = JsonNode.Parse(await http.GetStringAsync("/v1/runs"))!;
        Assert.Equal(expected, whole["data"]!.AsArray().Select(r => r!["id"]!.GetValue<string>()));
        Assert.False(whole["has_more"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Bad_limits_and_cursors_of_the_runs_list_are_refused_and_another_subscriptions_run_tells_nothing()
    {
        var me = await SubscribeAsync();
        var someoneElse = await SubscribeAsync();
        var theirs = await AddRunAsync(someoneElse.Subscription.Id, DateTimeOffset.UtcNow);
        using var http = _bed.Http(me.Key);

        foreach (var limit in new[] { "limit=0", "limit=101", "limit=ten", "limit=" })
        {
            await AssertRefusedAsync(http, limit, "limit");
        }

        var unknown = await AssertRefusedAsync(http, "after=" + RunId(Guid.NewGuid()), "after");
        Assert.Equal(unknown, await AssertRefusedAsync(http, "after=" + RunId(theirs.Id), "after"));
        Assert.Equal(unknown, await AssertRefusedAsync(http, "after=esc_" + theirs.Id.ToString("N"), "after"));
        Assert.Equal(unknown, await AssertRefusedAsync(http, "after=run_", "after"));
    }

    [Fact]
    public async Task The_console_lists_runs_a_page_at_a_time_with_older_and_newer_links()
    {
        var me = await SubscribeAsync();
        var pageSize = CmpWaldurAdapter.Web.Pages.Console.IndexModel.ActivityPageSize;
        var noon = new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
        var runs = new List<CmpWaldurAdapter.Capabilities.AutomationRun>();
        for (var i = 0; i < pageSize + 2; i++)
        {
            runs.Add(await AddRunAsync(me.Subscription.Id, noon.AddMinutes(Math.Max(i, 2)), $"output-{i:D3}"));
        }

        var newestFirst = runs.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id).Select(r => r.Output!).ToList();
        using var browser = await ConsoleAsync(me.Subscription.Id);

        var first = await browser.GetStringAsync("/console?tab=activity");
        Assert.Equal(newestFirst.Take(pageSize), Outputs(first));
        var older = Assert.Single(PageLinks(first, "run-pages"));
        Assert.Equal("Older", older.Label);

        var second = await browser.GetStringAsync(older.Href);
        Assert.Equal(newestFirst.Skip(pageSize), Outputs(second));
        Assert.Equal(["Newest", "Newer"], PageLinks(second, "run-pages").Select(l => l.Label));
        var back = await browser.GetStringAsync(PageLinks(second, "run-pages")[1].Href);
        Assert.Equal(newestFirst.Take(pageSize), Outputs(back));
    }

    [Fact]
    public async Task Paging_one_activity_list_keeps_the_other_at_its_page()
    {
        var me = await SubscribeAsync();
        var pageSize = CmpWaldurAdapter.Web.Pages.Console.IndexModel.ActivityPageSize;
        var noon = new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);
        // Three pages of each list (the last of two), so a page reached by Newer is not the newest one.
        var escalations = Enumerable.Range(0, (2 * pageSize) + 2).Select(i => new CmpWaldurAdapter.Capabilities.HandoffConversation
        {
            Id = Guid.NewGuid(),
            SubscriptionId = me.Subscription.Id,
            Conversation = $"conv-{i:D3}",
            EscalatedAt = noon.AddMinutes(i),
            EscalationReason = "visitor_request",
            CreatedAt = noon,
            UpdatedAt = noon,
        }).ToList();
        await _bed.Tenants.QueryAsync(db =>
        {
            db.HandoffConversations.AddRange(escalations);
            return db.SaveChangesAsync();
        });
        var runs = new List<CmpWaldurAdapter.Capabilities.AutomationRun>();
        for (var i = 0; i < (2 * pageSize) + 2; i++)
        {
            runs.Add(await AddRunAsync(me.Subscription.Id, noon.AddMinutes(i), $"output-{i:D3}"));
        }

        var escalationPages = escalations.OrderByDescending(e => e.EscalatedAt).Select(e => e.Conversation).Chunk(pageSize).ToList();
        var runPages = runs.OrderByDescending(r => r.CreatedAt).Select(r => r.Output!).Chunk(pageSize).ToList();
        using var browser = await ConsoleAsync(me.Subscription.Id);
        void AssertPages(string html, int escalationPage, int runPage)
        {
            Assert.Equal(escalationPages[escalationPage], Conversations(html));
            Assert.Equal(runPages[runPage], Outputs(html));
        }

        async Task<string> FollowAsync(string html, string list, string label) =>
            await browser.GetStringAsync(Assert.Single(PageLinks(html, list), l => l.Label == label).Href);

        var newest = await browser.GetStringAsync("/console?tab=activity");
        AssertPages(newest, 0, 0);

        // Escalations one page older (escalations_after), then the runs' links: the escalations stay there.
        var escalationsOlder = await FollowAsync(newest, "escalation-pages", "Older");
        AssertPages(escalationsOlder, 1, 0);
        var bothOlder = await FollowAsync(escalationsOlder, "run-pages", "Older");
        AssertPages(bothOlder, 1, 1);

        // The reverse: the escalations' links keep the runs' page (runs_after).
        var escalationsOldest = await FollowAsync(bothOlder, "escalation-pages", "Older");
        AssertPages(escalationsOldest, 2, 1);
        var escalationsNewer = await FollowAsync(escalationsOldest, "escalation-pages", "Newer");
        AssertPages(escalationsNewer, 1, 1);

        // A page reached by Newer (escalations_before) is kept by the runs' links, and the other way round (runs_before).
        var runsOldest = await FollowAsync(escalationsNewer, "run-pages", "Older");
        AssertPages(runsOldest, 1, 2);
        var runsNewer = await FollowAsync(runsOldest, "run-pages", "Newer");
        AssertPages(runsNewer, 1, 1);
        var escalationsNewest = await FollowAsync(runsNewer, "escalation-pages", "Newest");
        AssertPages(escalationsNewest, 0, 1);
        AssertPages(await FollowAsync(escalationsNewest, "run-pages", "Newest"), 0, 0);

        // The escalation webhook's link (escalation=, the page starting at that conversation) is kept as well.
        var linked = escalations.Single(e => e.Conversation == escalationPages[1][10]);
        var fromLink = await browser.GetStringAsync($"/console?tab=activity&escalation={CmpWaldurAdapter.Capabilities.Handoff.HandoffService.EscalationIdPrefix}{linked.Id:N}");
        var startingThere = escalationPages.SelectMany(p => p).Skip(pageSize + 10).Take(pageSize).ToList();
        Assert.Equal(startingThere, Conversations(fromLink));
        var runsOlderFromLink = await FollowAsync(fromLink, "run-pages", "Older");
        Assert.Equal(startingThere, Conversations(runsOlderFromLink));
        Assert.Equal(runPages[1], Outputs(runsOlderFromLink));
    }

    /// <summary>The escalated conversations in the Activity tab's table, in its order.</summary>
    private static List<string> Conversations(string html) =>
        [.. System.Text.RegularExpressions.Regex.Matches(html, "<td>(conv-[0-9]+)</td>").Select(m => m.Groups[1].Value)];

    /// <summary>The runs' outputs in the Activity tab's table, in its order (the flow answered each as text).</summary>
    private static List<string> Outputs(string html) =>
        [.. System.Text.RegularExpressions.Regex.Matches(html, "<td>&quot;(output-[0-9]+)&quot;</td></tr>").Select(m => m.Groups[1].Value)];

    /// <summary>The page links (label, address) of one of the Activity tab's lists.</summary>
    private static List<(string Label, string Href)> PageLinks(string html, string id)
    {
        var nav = System.Text.RegularExpressions.Regex.Match(html, $"<nav class=\"inline\" id=\"{id}\"[^>]*>(.*?)</nav>", System.Text.RegularExpressions.RegexOptions.Singleline);
        return nav.Success
            ? [.. System.Text.RegularExpressions.Regex.Matches(nav.Groups[1].Value, "href=\"([^\"]+)\">([^<]+)</a>").Select(m => (m.Groups[2].Value, System.Net.WebUtility.HtmlDecode(m.Groups[1].Value)))]
            : [];
    }

    private Task<CmpWaldurAdapter.Capabilities.AutomationRun> AddRunAsync(Guid subscriptionId, DateTimeOffset at, string output = "\"done\"", bool running = false) => _bed.Tenants.QueryAsync(async db =>
    {
        var run = new CmpWaldurAdapter.Capabilities.AutomationRun
        {
            Id = Guid.NewGuid(),
            SubscriptionId = subscriptionId,
            Trigger = "api",
            Status = running ? AutomationService.Running : "succeeded",
            Input = "{}",
            Output = running ? null : output,
            CreatedAt = at,
            FinishedAt = running ? null : at,
        };
        db.AutomationRuns.Add(run);
        await db.SaveChangesAsync();
        return run;
    });

    private static string RunId(Guid id) => AutomationService.RunIdPrefix + id.ToString("N");

    private static async Task<string> AssertRefusedAsync(HttpClient http, string query, string param)
    {
        using var response = await http.GetAsync("/v1/runs?" + query);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{query}: {(int)response.StatusCode} {body}");
        Assert.Equal(param, JsonNode.Parse(body)!["error"]!["param"]!.GetValue<string>());
        return body;
    }

    private async Task<HttpClient> ConsoleAsync(Guid subscriptionId)
    {
        var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Server.Url };
        var link = await _bed.Services.GetRequiredService<CmpWaldurAdapter.Web.ConsoleAccess>().CreateLinkAsync(subscriptionId, CancellationToken.None);
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(link.PathAndQuery)).StatusCode);
        return browser;
    }

    private Task<Subscriber> SubscribeAsync(string? schedule = null)
    {
        var attributes = new JsonObject { ["name"] = "triage", ["categories"] = "billing, shipping", ["schedule_input"] = """{"subject": "daily"}""" };
        if (schedule is not null)
        {
            attributes["schedule"] = schedule;
        }

        return _bed.SubscribeAsync(credits: 100, attributes, _offering);
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string body, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/runs") { Content = ChatTestBed.Json(body) };
        request.Headers.Add("Idempotency-Key", key);
        return await http.SendAsync(request);
    }

    private Task<string> ComponentOfChargeAsync(Guid customer) => _bed.Tenants.QueryAsync(async db =>
        CmpWaldurAdapter.Core.Catalogue.ActionClasses.Component((await db.LedgerEntries.AsNoTracking().SingleAsync(e => e.CustomerId == customer && e.Kind == CmpWaldurAdapter.Core.Credits.LedgerEntryKind.Charge)).ActionClass!.Value));

    /// <summary>The insert of a run (after the scheduler's look for one of the firing, with nothing else in between).</summary>
    [GeneratedRegex("""INSERT INTO "?automation_runs"?""")]
    private static partial Regex RunInsert();
}
