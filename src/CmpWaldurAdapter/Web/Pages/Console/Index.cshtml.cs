using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Usage;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web.Pages.Console;

/// <summary>
/// The buyer console of one subscription (the one its session names): configuration, API keys, widget, usage, run.
/// </summary>
[ResponseCache(NoStore = true, Location = ResponseCacheLocation.None)]
public sealed class IndexModel(
    IConsoleSession sessions,
    ConsoleAccess access,
    ConsoleSettings settings,
    ConsoleReportContributor report,
    ApiKeyService keys,
    BuyerWebStore store,
    CreditLedger ledger,
    IDbContextFactory<AdapterDbContext> dbs,
    TimeProvider clock,
    IOptions<WebOptions> options,
    Capabilities.Handoff.HandoffService handoff,
    Capabilities.Handoff.WebhookAddresses webhookAddresses,
    Capabilities.Automations.AutomationService automations,
    WidgetLimits widgetLimits,
    Credits.SpendAlerts.SpendAlertMonitor spendAlerts) : PageModel
{
    public const int MaxLogoBytes = 200 * 1024;

    /// <summary>Escalations and runs shown per page on the Activity tab.</summary>
    public const int ActivityPageSize = 50;

    public static readonly IReadOnlyList<(string Key, string Label)> Tabs =
        [("configuration", "Configuration"), ("keys", "API Keys"), ("widget", "Widget"), ("usage", "Usage"), ("activity", "Activity"), ("run", "Run")];

    [BindProperty(SupportsGet = true, Name = "tab")]
    public string Tab { get; set; } = "configuration";

    /// <summary>The Waldur resource a link names (the escalation webhook's link does); another subscription's is refused.</summary>
    [BindProperty(SupportsGet = true, Name = "resource")]
    public string? Resource { get; set; }

    /// <summary>The Activity tab's page of escalations: just older (after) or newer (before) than the named item; neither, the newest.</summary>
    [BindProperty(SupportsGet = true, Name = "escalations_after")]
    public string? EscalationsAfter { get; set; }

    [BindProperty(SupportsGet = true, Name = "escalations_before")]
    public string? EscalationsBefore { get; set; }

    /// <summary>The page of escalations that starts with this one (the escalation webhook's link).</summary>
    [BindProperty(SupportsGet = true, Name = "escalation")]
    public string? Escalation { get; set; }

    /// <summary>The Activity tab's page of automation runs, as for escalations.</summary>
    [BindProperty(SupportsGet = true, Name = "runs_after")]
    public string? RunsAfter { get; set; }

    [BindProperty(SupportsGet = true, Name = "runs_before")]
    public string? RunsBefore { get; set; }

    public Subscription Subscription { get; private set; } = null!;

    public CatalogueEntry Offering { get; private set; } = null!;

    /// <summary>The subscription's organization (Waldur customer), or null while none is recorded: the header shows whose console this is.</summary>
    public string? Organization { get; private set; }

    public JsonObject Configuration { get; private set; } = [];

    public IReadOnlyList<ConsoleSetting> Settings { get; private set; } = [];

    public IReadOnlyList<ApiKey> Keys { get; private set; } = [];

    public BuyerWebSettings Web { get; private set; } = new();

    /// <summary>Widget messages today (UTC), beside the daily cap (Widget tab).</summary>
    public int WidgetMessagesToday { get; private set; }

    public IReadOnlyDictionary<string, long> Usage { get; private set; } = new Dictionary<string, long>();

    public long Balance { get; private set; }

    /// <summary>Shown instead of the balance when <see cref="CreditCoversAgent"/> is false.</summary>
    public const string CreditNotCoveringText =
        "Your organization's credit in Waldur is limited to other agents and does not cover this one: its paid actions (chat, tools, documents) are refused. Ask your organization's owner to extend the credit to this agent.";

    /// <summary>Shown beside the balance when <see cref="CreditLimited"/> and it covers this agent.</summary>
    public const string CreditLimitedText = "Your organization's credit is limited to some agents; this one is among them.";

    /// <summary>False when the organization's Waldur customer credit is limited to other offerings: this agent's paid actions are refused.</summary>
    public bool CreditCoversAgent { get; private set; } = true;

    /// <summary>The organization's Waldur customer credit is limited to some offerings (this one among them or not).</summary>
    public bool CreditLimited { get; private set; }

    public long CreditsUsed => Usage.Values.Sum();

    /// <summary>Credits charged to the subscription this month, as its spend alert counts them (Usage tab).</summary>
    public long SpentThisMonth { get; private set; }

    /// <summary>The spend alert's thresholds reached this month (Usage tab).</summary>
    public IReadOnlyList<Credits.SpendAlerts.SpendAlertView> SpendAlerts { get; private set; } = [];

    /// <summary>Conversations handed to a person (Activity tab).</summary>
    public IReadOnlyList<Capabilities.Handoff.EscalatedConversation> Escalations { get; private set; } = [];

    /// <summary>The Older, Newer and Newest links of the escalations (null where there is nothing to go to).</summary>
    public ActivityPager EscalationPages { get; private set; } = ActivityPager.None;

    /// <summary>The escalation webhook (Activity tab); its secret is never read back.</summary>
    public Capabilities.Handoff.WebhookSettings? Webhook { get; private set; }

    /// <summary>A webhook signing secret just created: shown once.</summary>
    public string? NewWebhookSecret { get; private set; }

    /// <summary>The latest automation runs (Activity tab).</summary>
    public IReadOnlyList<Capabilities.Automations.AutomationRunView> Runs { get; private set; } = [];

    public ActivityPager RunPages { get; private set; } = ActivityPager.None;

    public string Period { get; private set; } = string.Empty;

    public Dictionary<string, string> Errors { get; } = new(StringComparer.Ordinal);

    /// <summary>Submitted values to show again when a save was refused.</summary>
    public Dictionary<string, string> Submitted { get; } = new(StringComparer.Ordinal);

    public string? Message { get; private set; }

    /// <summary>A key just created or regenerated: rendered in this response only, never again.</summary>
    public string? NewKey { get; private set; }

    public string ApiEndpoint => options.Value.Public("v1/chat/completions").ToString();

    public string WidgetScript => options.Value.Public("widget.js").ToString();

    public string? PublishableKeyPrefix => Keys.FirstOrDefault(k => k.Kind == ApiKeyKind.Publishable)?.Prefix;

    public string AgentName => Text("agent_name") ?? Offering.Name;

    public string Welcome => Text("welcome_message") ?? $"Hi! I am {AgentName}. How can I help?";

    public string Colour => Text("brand_colour") ?? "#2563eb";

    public string? LogoUrl => Web.LogoPath() is { } logo ? "/" + logo : null;

    public string ValueOf(ConsoleSetting setting) =>
        Submitted.TryGetValue(setting.Field.Key, out var submitted) ? submitted : ConsoleSettings.ValueOf(Configuration, setting.Field);

    /// <summary>
    /// A link naming another subscription (<see cref="Resource"/>) is refused before any handler runs: a form posted
    /// under it must not change the session's own subscription and then answer that the page is someone else's.
    /// </summary>
    public override async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context,
        PageHandlerExecutionDelegate next)
    {
        if (Resource is not null && await CallerAsync(HttpContext.RequestAborted) is { } caller
            && !(Guid.TryParse(Resource, out var resource) && resource == caller.Subscription.ResourceUuid))
        {
            context.Result = OtherSubscription();
            return;
        }

        await next();
    }

    public Task<IActionResult> OnGetAsync(CancellationToken cancellationToken) => RenderAsync(null, cancellationToken);

    public async Task<IActionResult> OnPostSaveAsync(CancellationToken cancellationToken)
    {
        Tab = "configuration";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        var offering = settings.OfferingOf(caller.Subscription);
        if (offering is null)
        {
            return StatusCode(StatusCodes.Status503ServiceUnavailable);
        }

        var input = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var setting in ConsoleSettings.SettingsOf(offering))
        {
            var key = setting.Field.Key;
            if (Request.Form.TryGetValue("setting_" + key, out var values))
            {
                input[key] = string.Join(",", values.Where(v => !string.IsNullOrEmpty(v)));
            }
            else if (setting.Field.Type == Core.Forms.FormFieldType.SelectStringMulti && Request.Form.ContainsKey("present_" + key))
            {
                input[key] = string.Empty; // every box unticked
            }
        }

        var result = await settings.SaveAsync(caller.Subscription.Id, input, cancellationToken);
        foreach (var (key, error) in result.Errors)
        {
            Errors[key] = error;
        }

        if (!result.Saved)
        {
            foreach (var (key, value) in input)
            {
                Submitted[key] = value ?? string.Empty;
            }

            Response.StatusCode = StatusCodes.Status400BadRequest;
        }

        return await RenderAsync(result.Message, cancellationToken);
    }

    public async Task<IActionResult> OnPostLogoAsync(IFormFile? logo, CancellationToken cancellationToken)
    {
        Tab = "configuration";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        var (bytes, type, error) = await ReadLogoAsync(logo, cancellationToken);
        if (error is not null)
        {
            Errors["logo"] = error;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return await RenderAsync("The logo was not changed.", cancellationToken);
        }

        await store.UpdateAsync(caller.Subscription.Id, s => (s.Logo, s.LogoContentType) = (bytes, type), cancellationToken);
        return await RenderAsync("Logo saved.", cancellationToken);
    }

    public async Task<IActionResult> OnPostWebhookAsync(string? url, CancellationToken cancellationToken)
    {
        Tab = "activity";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        var (address, refusal) = await webhookAddresses.CheckAsync(url, cancellationToken);
        if (address is null)
        {
            Errors["webhook_url"] = refusal!;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return await RenderAsync(null, cancellationToken);
        }

        var saved = await handoff.SetWebhookAsync(caller.Subscription.Id, address, cancellationToken);
        NewWebhookSecret = saved.Secret;
        return await RenderAsync(saved.Secret is null ? "Webhook address saved." : "Webhook saved. Copy its signing secret now: it is shown only once.", cancellationToken);
    }

    public async Task<IActionResult> OnPostRotateWebhookSecretAsync(CancellationToken cancellationToken)
    {
        Tab = "activity";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        var rotated = await handoff.RotateSecretAsync(caller.Subscription.Id, cancellationToken);
        NewWebhookSecret = rotated?.Secret;
        return await RenderAsync(rotated is null ? "Set a webhook address first." : "New signing secret created; the old one no longer signs. Copy it now: it is shown only once.", cancellationToken);
    }

    public async Task<IActionResult> OnPostCreateKeyAsync(string? name, string? kind, CancellationToken cancellationToken)
    {
        Tab = kind == "publishable" ? "widget" : "keys";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        if (name is { Length: > 100 })
        {
            Errors["key_name"] = "A key name is at most 100 characters.";
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return await RenderAsync(null, cancellationToken);
        }

        try
        {
            var created = await keys.CreateAsync(caller.Subscription.Id, kind == "publishable" ? ApiKeyKind.Publishable : ApiKeyKind.Secret, name ?? string.Empty, cancellationToken);
            NewKey = created.Plaintext;
            return await RenderAsync($"Key \"{created.Key.Name}\" created. Copy it now: it is shown only once.", cancellationToken);
        }
        catch (InvalidOperationException limit)
        {
            Errors["key_name"] = limit.Message;
            Response.StatusCode = StatusCodes.Status409Conflict;
            return await RenderAsync(null, cancellationToken);
        }
    }

    public async Task<IActionResult> OnPostRegenerateKeyAsync(Guid id, CancellationToken cancellationToken)
    {
        Tab = "keys";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        var created = await keys.RegenerateAsync(caller.Subscription.Id, id, cancellationToken);
        if (created is null)
        {
            return NotFound();
        }

        NewKey = created.Plaintext;
        return await RenderAsync($"Key \"{created.Key.Name}\" regenerated; the old value no longer works. Copy the new one now: it is shown only once.", cancellationToken);
    }

    public async Task<IActionResult> OnPostDeleteKeyAsync(Guid id, CancellationToken cancellationToken)
    {
        Tab = "keys";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        return await keys.RevokeAsync(caller.Subscription.Id, id, cancellationToken)
            ? await RenderAsync("Key deleted; it no longer works.", cancellationToken)
            : NotFound();
    }

    public async Task<IActionResult> OnPostAddDomainAsync(string? domain, CancellationToken cancellationToken)
    {
        Tab = "widget";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        if (!OriginRules.TryNormalize(domain, out var entry, out var error))
        {
            Errors["domain"] = error;
            Submitted["domain"] = domain ?? string.Empty;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return await RenderAsync(null, cancellationToken);
        }

        // Checked again on the row being changed, so two adds at once cannot overflow the list's column either.
        var refusal = OriginRules.Add((await store.GetAsync(caller.Subscription.Id, cancellationToken)).AllowedDomainList, entry, out var tooMany) is null ? tooMany : null;
        if (refusal is null)
        {
            await store.UpdateAsync(caller.Subscription.Id, s =>
            {
                if (OriginRules.Add(s.AllowedDomainList, entry, out var error) is { } list)
                {
                    s.AllowedDomains = list;
                }
                else
                {
                    refusal = error;
                }
            }, cancellationToken);
        }

        if (refusal is not null)
        {
            Errors["domain"] = refusal;
            Submitted["domain"] = domain ?? string.Empty;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return await RenderAsync(null, cancellationToken);
        }

        return await RenderAsync($"{entry} added.", cancellationToken);
    }

    public Task<IActionResult> OnPostWidgetCapAsync(string? cap, CancellationToken cancellationToken) =>
        SaveOptionalNumberAsync<int>("widget", "widget_cap", cap, BuyerWebSettings.TryParseDailyCap, (s, value) => s.WidgetDailyMessageCap = value,
            "The daily message cap was not changed.",
            value => value is { } set ? $"The widget now answers at most {set} messages a day." : "The widget's daily message cap was removed.", cancellationToken);

    public Task<IActionResult> OnPostSpendAlertAsync(string? credits, CancellationToken cancellationToken) =>
        SaveOptionalNumberAsync<long>("usage", "spend_alert", credits, BuyerWebSettings.TryParseSpendAlert, (s, value) => s.MonthlySpendAlertCredits = value,
            "The monthly spend alert was not changed.",
            value => value is { } set
                ? $"You will be alerted when this agent's spend this month reaches 50, 80 and 100 % of {set} credits."
                : "The monthly spend alert was removed.", cancellationToken);

    public async Task<IActionResult> OnPostRemoveDomainAsync(string? domain, CancellationToken cancellationToken)
    {
        Tab = "widget";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        await store.UpdateAsync(caller.Subscription.Id, s => s.AllowedDomains = string.Join('\n', s.AllowedDomainList.Where(d => d != domain)), cancellationToken);
        return await RenderAsync($"{domain} removed.", cancellationToken);
    }

    public async Task<IActionResult> OnPostRotateLinkAsync(CancellationToken cancellationToken)
    {
        Tab = "configuration";
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        var replacement = await report.RotateAsync(caller.Subscription, cancellationToken);
        if (replacement.Outcome != LinkReplacementOutcome.Replaced)
        {
            Response.StatusCode = replacement.Outcome == LinkReplacementOutcome.NotActive ? StatusCodes.Status409Conflict : StatusCodes.Status503ServiceUnavailable;
            if (replacement.Outcome != LinkReplacementOutcome.NotActive)
            {
                Response.Headers.RetryAfter = "60";
            }

            return await RenderAsync($"The console link was not replaced: {replacement.Reason}. The current link still works.", cancellationToken);
        }

        var renewed = caller with { LinkVersion = replacement.Version };
        access.StartSession(HttpContext, renewed);
        _caller = Task.FromResult<ConsoleCaller?>(renewed); // the request still carries the session it just replaced
        return await RenderAsync("The console link was replaced: earlier links no longer work. HomePort shows the new one.", cancellationToken);
    }

    /// <summary>Delegate of the console's optional-number parsers (<see cref="BuyerWebSettings.TryParseDailyCap"/>, ...).</summary>
    private delegate bool OptionalNumberParser<T>(string? input, out T? value, out string error)
        where T : struct;

    /// <summary>
    /// Saves one optional number of <see cref="BuyerWebSettings"/> from a one-field form: refused with its error (and the
    /// value shown again) and nothing changed, or saved and confirmed.
    /// </summary>
    private async Task<IActionResult> SaveOptionalNumberAsync<T>(string tab, string field, string? input, OptionalNumberParser<T> parse, Action<BuyerWebSettings, T?> save,
        string notChanged, Func<T?, string> saved, CancellationToken cancellationToken)
        where T : struct
    {
        Tab = tab;
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        if (!parse(input, out var value, out var error))
        {
            Errors[field] = error;
            Submitted[field] = input ?? string.Empty;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return await RenderAsync(notChanged, cancellationToken);
        }

        await store.UpdateAsync(caller.Subscription.Id, s => save(s, value), cancellationToken);
        return await RenderAsync(saved(value), cancellationToken);
    }

    /// <summary>The request's console session, resolved once (the handler filter, the handler and the page all ask).</summary>
    private Task<ConsoleCaller?> CallerAsync(CancellationToken cancellationToken) => _caller ??= sessions.ResolveAsync(HttpContext, cancellationToken);

    private Task<ConsoleCaller?>? _caller;

    /// <summary>No session, an ended one (expired or rotated), or a form without its anti-forgery token.</summary>
    private ContentResult Denied() => ConsoleAccess.IsCrossSiteNavigation(Request)
        // Reached from another site (a webhook's link in a ticket) the cookie was not sent: asked again from here it
        // is; without a session the page then gets the notice below.
        ? new ContentResult { StatusCode = StatusCodes.Status200OK, ContentType = "text/html; charset=utf-8", Content = ConsoleAccess.SameSiteAgainPage }
        : Notice(StatusCodes.Status401Unauthorized, "Open the console from HomePort",
            "Your console session has ended or this link is not valid. Open your agent's resource in HomePort and follow the buyer console link in its report.");

    /// <summary>A link naming another subscription than the session's: its page is that subscription's console only.</summary>
    private static ContentResult OtherSubscription() => Notice(StatusCodes.Status403Forbidden, "This link belongs to another agent's console",
        "Your console session is for a different subscription. Open that agent's resource in HomePort and follow the buyer console link in its report, then open this link again.");

    /// <summary>A plain page that says why the console is not shown (texts are fixed, never from the request).</summary>
    private static ContentResult Notice(int status, string title, string text) => new()
    {
        StatusCode = status,
        ContentType = "text/html; charset=utf-8",
        Content = ConsoleAccess.PlainPage("Console", $"<h1>{title}</h1><p>{text}</p>"),
    };

    private async Task<IActionResult> RenderAsync(string? message, CancellationToken cancellationToken)
    {
        if (await CallerAsync(cancellationToken) is not { } caller)
        {
            return Denied();
        }

        if (Tabs.All(t => t.Key != Tab))
        {
            Tab = "configuration";
        }

        Message = message;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        Subscription = await db.Subscriptions.AsNoTracking().SingleAsync(s => s.Id == caller.Subscription.Id, cancellationToken);
        Offering = settings.OfferingOf(Subscription) ?? throw new InvalidOperationException("This agent's offering is not served by this adapter right now.");
        Organization = await ConsoleAccess.OrganizationAsync(db, Subscription, cancellationToken);
        Configuration = ConsoleSettings.ConfigurationOf(Subscription);
        Settings = ConsoleSettings.SettingsOf(Offering);
        Keys = await keys.ListAsync(Subscription.Id, cancellationToken);
        Web = await store.GetAsync(Subscription.Id, cancellationToken);
        if (Tab == "widget")
        {
            WidgetMessagesToday = await widgetLimits.MessagesTodayAsync(Subscription.Id, cancellationToken);
        }

        var month = BillingPeriod.Of(clock.GetUtcNow());
        Period = month.ToString();
        var used = await UsageTotals.ForSubscriptionAsync(db, Subscription.Id, month, cancellationToken);
        Usage = Offering.Components.ToDictionary(c => c.Type, c => used.GetValueOrDefault(c.Type), StringComparer.Ordinal);
        var credits = await ledger.BalanceAsync(Subscription.CustomerId, cancellationToken);
        (Balance, CreditCoversAgent, CreditLimited) = (credits.Available, credits.Covers(Subscription.OfferingUuid), credits.CoveredOfferings is not null);
        if (Tab == "usage")
        {
            // The alert's own sum, not Usage.Values.Sum(): see SpendAlertMonitor.SpentAsync for why they can differ.
            SpentThisMonth = await spendAlerts.SpentAsync(Subscription.Id, Subscription.ResourceUuid, month, cancellationToken);
            SpendAlerts = await spendAlerts.AlertsAsync(Subscription.Id, month, cancellationToken);
        }
        if (Tab == "activity")
        {
            var escalations = await PageAsync(EscalationsAfter, EscalationsBefore, Escalation, Capabilities.Handoff.HandoffService.EscalationIdPrefix,
                from => handoff.EscalatedAsync(Subscription.Id, ActivityPageSize, from, cancellationToken));
            if (escalations.Refused)
            {
                (EscalationsAfter, EscalationsBefore, Escalation) = (null, null, null);
            }

            Webhook = await handoff.WebhookAsync(Subscription.Id, cancellationToken);
            var runs = await PageAsync(RunsAfter, RunsBefore, null, Capabilities.Automations.AutomationService.RunIdPrefix,
                from => automations.ListAsync(Subscription.Id, ActivityPageSize, from, cancellationToken));
            if (runs.Refused)
            {
                (RunsAfter, RunsBefore) = (null, null);
            }

            if (escalations.Refused || runs.Refused)
            {
                Errors[""] = "That page of the activity is not available; the newest items are shown.";
                Response.StatusCode = StatusCodes.Status400BadRequest;
            }

            // The links once both cursors are known: each keeps the other list at its page.
            (Escalations, EscalationPages) = (escalations.Page.Data, Pager("escalations", escalations.From, escalations.Page, e => e.Id));
            (Runs, RunPages) = (runs.Page.Data, Pager("runs", runs.From, runs.Page, r => r.Id));
        }

        Response.Headers.CacheControl = "no-store";
        return Page();
    }

    /// <summary>
    /// One of the Activity tab's lists at the page its query names. A cursor that is malformed or names no item of
    /// this subscription (another's included) is refused and the newest page read instead: nothing more is told.
    /// </summary>
    private static async Task<(Api.ListPage<T> Page, Api.PageCursor? From, bool Refused)> PageAsync<T>(string? after, string? before, string? at, string idPrefix,
        Func<Api.PageCursor?, Task<Api.ListPage<T>?>> read)
    {
        var given = (after is null ? 0 : 1) + (before is null ? 0 : 1) + (at is null ? 0 : 1);
        if (given == 0)
        {
            return ((await read(null))!, null, false);
        }

        if (given > 1 || !Api.ListQuery.TryParseId(after ?? before ?? at, idPrefix, out var id))
        {
            return ((await read(null))!, null, true);
        }

        var from = new Api.PageCursor(id, Newer: before is not null, Including: at is not null);
        return await read(from) is { } page ? (page, from, false) : ((await read(null))!, null, true);
    }

    /// <summary>
    /// Older: past the page's last item, when there is more (a page of newer items always has its cursor's item past it).
    /// Newer: before its first item, unless the page is the newest. Newest: whenever a cursor is in use.
    /// </summary>
    private ActivityPager Pager<T>(string list, Api.PageCursor? from, Api.ListPage<T> page, Func<T, string> idOf)
    {
        if (page.Data.Count == 0)
        {
            return from is null ? ActivityPager.None : new ActivityPager(null, null, ActivityLink(list, null, null));
        }

        var pastNewer = from is { Newer: true };
        var older = pastNewer || page.HasMore ? ActivityLink(list, "after", idOf(page.Data[^1])) : null;
        var newer = from is not null && (!pastNewer || page.HasMore) ? ActivityLink(list, "before", idOf(page.Data[0])) : null;
        return new ActivityPager(older, newer, from is null ? null : ActivityLink(list, null, null));
    }

    /// <summary>The Activity tab with one list at another page; the other list stays at the page it shows.</summary>
    private string ActivityLink(string list, string? direction, string? id)
    {
        var query = new List<string> { "tab=activity" };
        void Keep(string name, string? value)
        {
            if (value is not null)
            {
                query.Add($"{name}={Uri.EscapeDataString(value)}");
            }
        }

        if (list == "escalations")
        {
            Keep("escalations_" + direction, id);
            Keep("runs_after", RunsAfter);
            Keep("runs_before", RunsBefore);
        }
        else
        {
            Keep("escalations_after", EscalationsAfter);
            Keep("escalations_before", EscalationsBefore);
            Keep("escalation", Escalation);
            Keep("runs_" + direction, id);
        }

        return $"/console?{string.Join('&', query)}#{list}-title";
    }

    private static async Task<(byte[]? Bytes, string? Type, string? Error)> ReadLogoAsync(IFormFile? logo, CancellationToken cancellationToken)
    {
        if (logo is null || logo.Length == 0)
        {
            return (null, null, "Choose an image file.");
        }

        if (logo.Length > MaxLogoBytes)
        {
            return (null, null, $"The logo is {logo.Length / 1024} KB; the limit is {MaxLogoBytes / 1024} KB.");
        }

        using var buffer = new MemoryStream();
        await logo.CopyToAsync(buffer, cancellationToken);
        var bytes = buffer.ToArray();
        // The type comes from the bytes, not the browser's claim; SVG is refused (it can carry scripts).
        var type = bytes switch
        {
            [0x89, 0x50, 0x4E, 0x47, ..] => "image/png",
            [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
            [0x47, 0x49, 0x46, 0x38, ..] => "image/gif",
            [0x52, 0x49, 0x46, 0x46, _, _, _, _, 0x57, 0x45, 0x42, 0x50, ..] => "image/webp",
            _ => null,
        };
        return type is null ? (null, null, "The logo must be a PNG, JPEG, GIF or WebP image.") : (bytes, type, null);
    }

    private string? Text(string key) =>
        Configuration.TryGetPropertyValue(key, out var value) && value?.ToString() is { Length: > 0 } text ? text : null;
}

/// <summary>Links to the older, newer and newest page of an Activity list; null where there is nothing to go to.</summary>
public sealed record ActivityPager(string? Older, string? Newer, string? Newest)
{
    public static readonly ActivityPager None = new(null, null, null);
}
