using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Usage;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// The JSON endpoints behind the buyer pages: try messages, the console's Run tab, console links, logos, and the
/// widget's visitor sessions and messages. Page endpoints, not the public API: they are not in the OpenAPI document.
/// </summary>
public static partial class BuyerWebEndpoints
{
    public const string TryVisitorCookie = "cmp_try";

    /// <summary>Where the console's Sign out button posts.</summary>
    public const string SignOutPath = "/console/signout";
    private const string TryVisitorPurpose = "TryVisitor";
    private const string WidgetVisitorPurpose = "WidgetVisitor";

    public static void MapBuyerWebEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/console/open", OpenConsoleAsync).ExcludeFromDescription();
        endpoints.MapPost("/console/open", SwitchConsoleAsync).ExcludeFromDescription();
        endpoints.MapPost(SignOutPath, SignOutAsync).ExcludeFromDescription();
        endpoints.MapPost("/console/api/chat", ConsoleChatAsync).ExcludeFromDescription();
        endpoints.MapGet("/web/logo/{subscriptionId:guid}", LogoAsync).ExcludeFromDescription();
        endpoints.MapPost("/try/{offering}/messages", TryMessageAsync).ExcludeFromDescription();
        endpoints.MapPost("/widget/v1/session", WidgetSessionAsync).ExcludeFromDescription();
        endpoints.MapPost("/widget/v1/chat", WidgetChatAsync).ExcludeFromDescription();
        endpoints.MapMethods("/widget/v1/{action}", ["OPTIONS"], Preflight).ExcludeFromDescription();
    }

    /// <param name="Id">
    /// The widget's id of this message (hex, from crypto.getRandomValues), the same on every send of it; optional (a copy
    /// of widget.js cached from before sends none). The try page and the Run tab offer no retry and send none.
    /// </param>
    public sealed record MessageRequest(
        [property: JsonPropertyName("message")] string? Message,
        [property: JsonPropertyName("conversation")] string? Conversation,
        [property: JsonPropertyName("id")] string? Id = null);

    /// <param name="Key">The publishable key.</param>
    /// <param name="Previous">The visitor token of this visitor's previous session (expired or not): its conversation goes on.</param>
    public sealed record WidgetSessionRequest(
        [property: JsonPropertyName("key")] string? Key,
        [property: JsonPropertyName("previous")] string? Previous = null);

    // ---- Console ---------------------------------------------------------------------------------------

    /// <summary>
    /// Opens the console from its link. A browser that is, or may be, in the console of another subscription is asked
    /// before its session is replaced: a link is a login, and one sent by someone else (their own agent's) must not
    /// quietly put the buyer in a console where what they upload or paste goes to that someone.
    /// </summary>
    private static async Task<IResult> OpenConsoleAsync(HttpContext http, [Microsoft.AspNetCore.Mvc.FromQuery(Name = "t")] string? token, ConsoleAccess console, IAntiforgery antiforgery, IDbContextFactory<AdapterDbContext> dbs, CancellationToken cancellationToken)
    {
        http.Response.Headers.CacheControl = "no-store";
        var hidden = ConsoleAccess.MayHideSession(http);
        if (hidden && !http.Request.Query.ContainsKey("again"))
        {
            // Whether this browser is in a console already shows only in the Strict cookie, sent on a same-site
            // request: asked once more from here.
            return Results.Content(ConsoleAccess.SameSiteAgain($"/console/open?t={Uri.EscapeDataString(token ?? string.Empty)}&again=1"), "text/html; charset=utf-8");
        }

        if (await console.ReadLinkAsync(token, cancellationToken) is not { } opening)
        {
            return Page(StatusCodes.Status403Forbidden, "Link not valid", "This console link is not valid", "It has expired or was replaced. Open the agent's resource in HomePort for the current link.");
        }

        var current = await console.ResolveAsync(http, cancellationToken);
        // Still hidden after asking again ("again" can be written into any link): the session cannot be seen, so ask.
        if (hidden || (current is not null && current.Subscription.Id != opening.Subscription.Id))
        {
            var form = antiforgery.GetAndStoreTokens(http);
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            var next = await DescribeAsync(db, opening, cancellationToken);
            var now = current is null ? null : await DescribeAsync(db, current, cancellationToken);
            return Results.Content(ConsoleAccess.PlainPage(
                "Switch console?",
                "<h1>Switch to another agent's console?</h1>"
                + $"<p>{(now is null ? "You may be in another agent's console." : $"You are in the console of <strong>{now}</strong>.")} This link opens the console of <strong id=\"next-agent\">{next}</strong>. "
                + "Switch only if it is your organization's agent and you followed the link from HomePort: what you upload or type in a console goes to its agent.</p>"
                + $"<form method=\"post\" action=\"/console/open\"><input name=\"{form.FormFieldName}\" type=\"hidden\" value=\"{form.RequestToken}\"><input name=\"t\" type=\"hidden\" value=\"{WebUtility.HtmlEncode(token)}\">"
                + $"<button type=\"submit\" id=\"switch\">Open the console of {next}</button></form><p><a id=\"stay\" href=\"/console\">{(now is null ? "Do not switch" : $"Stay in the console of {now}")}</a></p>"),
                "text/html; charset=utf-8");
        }

        console.StartSession(http, opening);
        // The token leaves the address bar (and history) at once.
        return Results.Redirect("/console");
    }

    /// <summary>The buyer's answer to "switch console?": only from that page (its anti-forgery token), never from another site.</summary>
    private static async Task<IResult> SwitchConsoleAsync(HttpContext http, ConsoleAccess console, IAntiforgery antiforgery, IDbContextFactory<AdapterDbContext> dbs, CancellationToken cancellationToken)
    {
        http.Response.Headers.CacheControl = "no-store";
        if (!http.Request.HasFormContentType || !await antiforgery.IsRequestValidAsync(http))
        {
            return Page(StatusCodes.Status400BadRequest, "Not switched", "The console was not switched",
                "This request did not come from the console's own page. Open the agent's resource in HomePort and follow its console link.");
        }

        var form = await http.Request.ReadFormAsync(cancellationToken);
        if (await console.ReadLinkAsync(form["t"], cancellationToken) is not { } opening)
        {
            return Page(StatusCodes.Status403Forbidden, "Link not valid", "This console link is not valid", "It has expired or was replaced. Open the agent's resource in HomePort for the current link.");
        }

        // A session cookie sent twice (one planted beside the buyer's) would hide the new session as it hid the old one.
        if (ConsoleAccess.SessionPresence(http) == CookiePresence.Ambiguous)
        {
            ConsoleAccess.ExpireDoubledSessionCookies(http);
        }

        console.StartSession(http, opening);
        return Results.Redirect("/console");
    }

    /// <summary>
    /// The console's Sign out button: only from a console page of this session (its anti-forgery token), so another site
    /// cannot sign the buyer out. Ends the session for good (a copy of its cookie opens nothing) and expires its cookies.
    /// </summary>
    private static async Task<IResult> SignOutAsync(HttpContext http, ConsoleAccess console, IAntiforgery antiforgery, TimeProvider clock, CancellationToken cancellationToken)
    {
        http.Response.Headers.CacheControl = "no-store";
        if (!http.Request.HasFormContentType || !await antiforgery.IsRequestValidAsync(http))
        {
            // Also a second Sign out, its session's cookie gone: nothing to end, nothing changed.
            return Page(StatusCodes.Status400BadRequest, "Not signed out", "Nothing was signed out",
                "This request did not come from a console page of this browser's session, or that session has already ended. If the console is still open, use its Sign out button.");
        }

        await console.SignOutAsync(http, clock, cancellationToken);
        return Results.Content(ConsoleAccess.PlainPage("Signed out",
            "<h1 id=\"signed-out\">You are signed out</h1><p>Your console session has ended in this browser. To open the console again, follow the buyer console link in your agent's resource in HomePort.</p>"),
            "text/html; charset=utf-8");
    }

    /// <summary>"Name (organization)", HTML-encoded: the organization is what tells a buyer's own agent from another's.</summary>
    private static async Task<string> DescribeAsync(AdapterDbContext db, ConsoleCaller caller, CancellationToken cancellationToken)
    {
        var organization = await ConsoleAccess.OrganizationAsync(db, caller.Subscription, cancellationToken);
        return WebUtility.HtmlEncode(organization is null ? caller.Subscription.Name : $"{caller.Subscription.Name} ({organization})");
    }

    /// <summary>A console notice (fixed texts, never from the request).</summary>
    private static IResult Page(int status, string title, string heading, string text) =>
        Results.Content(ConsoleAccess.PlainPage(title, $"<h1>{heading}</h1><p>{text}</p>"), "text/html; charset=utf-8", statusCode: status);

    private static async Task<IResult> ConsoleChatAsync(HttpContext http, IConsoleSession sessions, IPageChat chat, IDbContextFactory<AdapterDbContext> dbs, CreditLedger ledger, TimeProvider clock, IOptions<WebOptions> options, CancellationToken cancellationToken)
    {
        if (await sessions.ResolveAsync(http, cancellationToken) is not { } caller)
        {
            return ApiErrors.Problem(StatusCodes.Status401Unauthorized, "Your console session has ended or this request was not sent by the console. Open the console link again.", "invalid_request_error", "console_session_invalid");
        }

        var (request, error) = await ReadMessageAsync(http, options.Value);
        if (error is not null)
        {
            return error;
        }

        var answer = await chat.AnswerAsync(caller.Subscription, "console", Conversation(request!.Conversation), request.Message!, cancellationToken);
        if (!answer.Answered)
        {
            return Refusal(answer);
        }

        // The reply shows the month's usage from the ledger: read it once this answer's charge is written.
        await answer.Settled.WaitAsync(cancellationToken);
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var used = await UsageTotals.ForSubscriptionAsync(db, caller.Subscription.Id, BillingPeriod.Of(clock.GetUtcNow()), cancellationToken);
        var balance = await ledger.BalanceAsync(caller.Subscription.CustomerId, cancellationToken);
        // As the page: no balance for an agent the organization's credit does not cover (limited away during this answer).
        long? available = balance.Covers(caller.Subscription.OfferingUuid) ? balance.Available : null;
        return Results.Json(new { answer = answer.Text, handoff = answer.Handoff, charged = answer.Charged, credits_used = used.Values.Sum(), balance = available }, ApiJson.Options);
    }

    private static async Task<IResult> LogoAsync(Guid subscriptionId, [Microsoft.AspNetCore.Mvc.FromQuery(Name = "v")] string? version, HttpContext http, BuyerWebStore store, CancellationToken cancellationToken)
    {
        // Shown by the widget on buyers' sites, as widget.js is: one that requires it (COEP require-corp) must be told.
        http.Response.Headers["Cross-Origin-Resource-Policy"] = "cross-origin";
        var settings = await store.GetAsync(subscriptionId, cancellationToken);
        if (settings.Logo is not { } bytes || settings.LogoContentType is not { } type)
        {
            return Results.NotFound();
        }

        // The address the console and the widget use names the image's own version, so it never changes and is kept
        // for good; any other (no version, an old one) is checked again each time, or a new logo would not show.
        var current = settings.LogoVersion()!;
        http.Response.Headers.CacheControl = version == current ? "public, max-age=31536000, immutable" : "no-cache";
        return Results.File(bytes, type, lastModified: settings.UpdatedAt, entityTag: new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{current}\""));
    }

    // ---- Try -------------------------------------------------------------------------------------------

    /// <summary>
    /// The try visitor id from the signed cookie, issuing a new one when it is missing, not ours, or sent twice (another
    /// site's planted beside it: the id names the demo conversation, which must not be shared with whoever planted it).
    /// </summary>
    public static string TryVisitor(HttpContext http, SignedTokens tokens)
    {
        var name = SecureRequests.CookieName(http, TryVisitorCookie);
        if (tokens.Read(TryVisitorPurpose, SecureRequests.SingleCookie(http.Request, name), 1) is [var visitor])
        {
            return visitor;
        }

        visitor = Guid.NewGuid().ToString("N");
        var secure = SecureRequests.IsSecure(http);
        http.Response.Cookies.Append(name, tokens.Create(TryVisitorPurpose, TimeSpan.FromDays(30), visitor), new CookieOptions
        {
            HttpOnly = true,
            Secure = secure,
            // Lax: HomePort links here from another site, and a Strict cookie missing on that navigation would be
            // replaced by a new visitor's (with five new messages). It is only an id; no other site's POST carries it.
            SameSite = SameSiteMode.Lax,
            // A __Host- cookie must have Path=/; over plain HTTP it keeps to the try pages.
            Path = secure ? "/" : "/try",
            MaxAge = TimeSpan.FromDays(30),
            IsEssential = true,
        });
        return visitor;
    }

    /// <summary>
    /// The offering a try page or its messages are for: in the catalogue and served by this adapter (its Waldur
    /// offering, for the Subscribe link); null for any other, so a demo flow runs only where the page is shown.
    /// </summary>
    public static (CatalogueEntry Entry, OfferingBinding Binding)? TryOffering(string slug, OfferingCatalogue catalogue, ServedOfferings served) =>
        served.Offerings.FirstOrDefault(o => o.Slug == slug) is { } binding && catalogue.Find(slug) is { } entry ? (entry, binding) : null;

    private static async Task<IResult> TryMessageAsync(string offering, HttpContext http, OfferingCatalogue catalogue, ServedOfferings served, SignedTokens tokens, TryLimiter limiter, IPageChat chat, IOptions<WebOptions> options, TimeProvider clock, CancellationToken cancellationToken)
    {
        if (TryOffering(offering, catalogue, served) is not { } found)
        {
            return ApiErrors.NotFound("There is no such offering.", "offering_not_found");
        }

        var entry = found.Entry;

        var (request, error) = await ReadMessageAsync(http, options.Value);
        if (error is not null)
        {
            return error;
        }

        var visitor = TryVisitor(http, tokens);
        var (address, site) = (ClientAddress.Of(http), ClientAddress.SiteOf(http));
        var takenAt = clock.GetUtcNow();
        var (refused, remaining) = await limiter.TryTakeAsync(entry.Slug, visitor, address, site, takenAt, cancellationToken);
        if (refused is { } limit)
        {
            return Results.Json(new
            {
                error = new ApiError(
                    limit == TryLimit.OfferingDay
                        ? $"The demo of {entry.Name} has answered all the messages it can for today. Please come back tomorrow, or subscribe to keep chatting."
                        : $"You have used the free demo messages of {entry.Name}. Subscribe to keep chatting.",
                    "requests", "demo_limit_reached", null),
                remaining = 0,
            }, ApiJson.Options, statusCode: StatusCodes.Status429TooManyRequests);
        }

        PageAnswer? answer = null;
        try
        {
            answer = await chat.DemoAsync(entry, visitor, request!.Message!, cancellationToken);
        }
        finally
        {
            if (answer?.Answered != true)
            {
                await limiter.GiveBackAsync(entry.Slug, visitor, address, site, takenAt); // not answered (or the visitor left first)
            }
        }

        return answer.Answered ? Results.Json(new { answer = answer.Text, remaining }, ApiJson.Options) : Refusal(answer);
    }

    // ---- Widget ----------------------------------------------------------------------------------------

    private static async Task<IResult> WidgetSessionAsync(HttpContext http, ApiKeyService keys, BuyerWebStore store, ConsoleSettings settings, SignedTokens tokens, WidgetLimits limits, IOptions<WebOptions> options, CancellationToken cancellationToken)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (!OriginRules.TryParseOrigin(origin, out _, out _))
        {
            return ApiErrors.Problem(StatusCodes.Status403Forbidden, "The widget runs only on web pages (the request has no valid Origin).", "invalid_request_error", "origin_not_allowed");
        }

        // Refusals are readable by the page too, so the site owner sees why; only a token grants anything.
        Cors(http, origin);
        var (request, error) = await ApiRequests.ReadJsonAsync<WidgetSessionRequest>(http, 4096);
        if (error is not null)
        {
            return error;
        }

        var caller = await keys.AuthenticateAsync(request!.Key, cancellationToken);
        if (caller is null || caller.Key.Kind != ApiKeyKind.Publishable)
        {
            // A secret key is refused too: it must never be used in a browser.
            return ApiErrors.Problem(StatusCodes.Status401Unauthorized, "The widget needs a valid publishable key (pk_live_…).", "invalid_request_error", "invalid_api_key");
        }

        var web = await store.GetAsync(caller.Subscription.Id, cancellationToken);
        if (!OriginRules.Allows(web.AllowedDomainList, origin))
        {
            return ApiErrors.Problem(StatusCodes.Status403Forbidden, "This website is not among the widget's allowed domains. Add it in the console's Widget tab.", "invalid_request_error", "origin_not_allowed");
        }

        if (settings.OfferingOf(caller.Subscription) is not { } offering || !offering.Has(Capability.Widget))
        {
            return ApiErrors.NotFound("This agent has no website widget.", "widget_not_available");
        }

        if (ApiCaller.Refusal(caller.Subscription) is { } suspended)
        {
            return suspended;
        }

        // Each token carries its own burst allowance, so minting them is limited per address and IPv6 /48, across replicas.
        if (await limits.TakeSessionAsync(caller.Subscription.Id, ClientAddress.Of(http), ClientAddress.SiteOf(http), cancellationToken) is { } untilNextSession)
        {
            return ApiErrors.TooManyRequests(untilNextSession, seconds => $"Too many chat sessions were started from your network; try again in {Wait(seconds)}.");
        }

        var lifetime = options.Value.VisitorTokenLifetime;
        // The visitor id names the conversation (the agent's memory, the handoff), so a renewal keeps it.
        var resumed = ResumedVisitor(tokens, request.Previous, caller, origin, options.Value);
        var visitor = resumed ?? Guid.NewGuid().ToString("N");
        // The key's prefix names its current value (not secret, new on regenerate), so a regenerated key ends its tokens.
        var token = tokens.Create(WidgetVisitorPurpose, lifetime, caller.Subscription.Id.ToString("N"), caller.Key.Id.ToString("N"), caller.Key.Prefix, origin, visitor);
        var configuration = ConsoleSettings.ConfigurationOf(caller.Subscription);
        return Results.Json(new
        {
            token,
            expires_in = (int)lifetime.TotalSeconds,
            resumed = resumed is not null,
            name = Text(configuration, "agent_name") ?? offering.Name,
            welcome = Text(configuration, "welcome_message") ?? $"Hi! I am {Text(configuration, "agent_name") ?? offering.Name}. How can I help?",
            colour = Text(configuration, "brand_colour") ?? "#2563eb",
            logo = web.LogoPath() is { } logo ? options.Value.Public(logo).ToString() : null,
        }, ApiJson.Options);
    }

    /// <summary>
    /// The visitor id of the previous session's token, when it is ours (signed, so a visitor cannot name another's
    /// conversation), expired at most <see cref="WebOptions.WidgetConversationResumeWindow"/> ago, and issued for the
    /// same subscription, key (and key value) and origin; null otherwise (a new conversation).
    /// </summary>
    private static string? ResumedVisitor(SignedTokens tokens, string? previous, AuthenticatedKey caller, string origin, WebOptions options) =>
        tokens.Read(WidgetVisitorPurpose, previous, 5, options.WidgetConversationResumeWindow) is [var subscription, var key, var keyPrefix, var boundOrigin, var visitor]
        && subscription == caller.Subscription.Id.ToString("N")
        && key == caller.Key.Id.ToString("N")
        && keyPrefix == caller.Key.Prefix
        && string.Equals(boundOrigin, origin, StringComparison.Ordinal)
        && Guid.TryParseExact(visitor, "N", out _)
            ? visitor
            : null;

    private static async Task<IResult> WidgetChatAsync(HttpContext http, SignedTokens tokens, IDbContextFactory<AdapterDbContext> dbs, BuyerWebStore store, WidgetLimits limits, IPageChat chat, IdempotencyStore idempotency, IOptions<WebOptions> options, IOptions<ChatOptions> chatOptions, TimeProvider clock, CancellationToken cancellationToken)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (OriginRules.TryParseOrigin(origin, out _, out _))
        {
            Cors(http, origin);
        }

        var header = http.Request.Headers.Authorization.ToString();
        var token = header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? header[7..].Trim() : null;
        // A token issued before tokens named the key's value (four fields) is refused here too: the widget starts a new session.
        if (tokens.Read(WidgetVisitorPurpose, token, 5) is not [var subscriptionText, var keyText, var keyPrefix, var boundOrigin, var visitor]
            || !Guid.TryParseExact(subscriptionText, "N", out var subscriptionId) || !Guid.TryParseExact(keyText, "N", out var keyId))
        {
            return ApiErrors.Problem(StatusCodes.Status401Unauthorized, "The widget session is missing or has expired; reload the page.", "invalid_request_error", "invalid_visitor_token");
        }

        // The token works only from the page it was issued to: another site cannot borrow it.
        if (!string.Equals(origin, boundOrigin, StringComparison.Ordinal))
        {
            return ApiErrors.Problem(StatusCodes.Status403Forbidden, "This widget session belongs to another website.", "invalid_request_error", "origin_not_allowed");
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking().SingleOrDefaultAsync(s => s.Id == subscriptionId, cancellationToken);
        var keyLive = await db.ApiKeys.AnyAsync(k => k.Id == keyId && k.SubscriptionId == subscriptionId && k.RevokedAt == null && k.Prefix == keyPrefix, cancellationToken);
        var web = await store.GetAsync(subscriptionId, cancellationToken);
        if (subscription is null || !keyLive || !OriginRules.Allows(web.AllowedDomainList, origin))
        {
            // The key was revoked or regenerated or the domain removed since the session started: stop at once.
            return ApiErrors.Problem(StatusCodes.Status403Forbidden, "The widget is no longer enabled on this website.", "invalid_request_error", "origin_not_allowed");
        }

        // Bad input first: a message refused as such uses none of the visitor's burst.
        var (request, error) = await ReadMessageAsync(http, options.Value);
        if (error is not null)
        {
            return error;
        }

        if (request!.Id is { } messageId && !MessageIdPattern().IsMatch(messageId))
        {
            return ApiErrors.InvalidRequest("The message id must be 32 to 64 lowercase hexadecimal characters.", "id", "invalid_message_id");
        }

        // A message sent again with its id (the widget's Retry, when the answer was lost on its way) is answered from
        // what its first send stored: not run, charged or counted again. Keyed by the visitor, from the signed token.
        IdempotentRequest? remembered = null;
        if (request.Id is not null)
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(request.Message!)));
            var (decision, entry) = await idempotency.BeginAsync(keyId, IdempotencyStore.WidgetScope, $"{visitor}:{request.Id}", hash, chatOptions.Value.RunTimeout, cancellationToken);
            switch (decision)
            {
                case IdempotencyDecision.Replay:
                    http.Response.Headers["Idempotent-Replayed"] = "true";
                    return Results.Content(entry.ResponseBody, entry.ContentType, Encoding.UTF8, entry.StatusCode);
                case IdempotencyDecision.InFlight:
                    return ApiErrors.Problem(StatusCodes.Status409Conflict, "This message is still being answered; retry in a moment.", "invalid_request_error", "idempotency_key_in_use",
                        headers: r => r.Headers.RetryAfter = "5");
                case IdempotencyDecision.Mismatch:
                    return ApiErrors.Problem(StatusCodes.Status422UnprocessableEntity, "This message id was already used for another message.", "invalid_request_error", "idempotency_key_reused", "id");
                default:
                    remembered = entry;
                    break;
            }
        }

        PageAnswer? answer = null;
        try
        {
            // Before anything is charged or sent upstream: the address's day and minute (and its IPv6 /48's), whatever
            // tokens it holds, the visitor's minute and the buyer's cap.
            var takenAt = clock.GetUtcNow();
            var (address, site) = (ClientAddress.Of(http), ClientAddress.SiteOf(http));
            switch (await limits.TakeMessageAsync(subscriptionId, address, site, visitor, web.WidgetDailyMessageCap, takenAt, cancellationToken))
            {
                case (WidgetLimit.DailyCap, var untilTomorrow):
                    return ApiErrors.TooManyRequests(untilTomorrow, _ => "This assistant has answered all the messages it can for today. Please come back tomorrow.", "daily_limit_reached");
                case (WidgetLimit.MessagesPerVisitor, var untilNextMinute):
                    return ApiErrors.TooManyRequests(untilNextMinute, seconds => $"Too many messages; wait {seconds} s.");
                case (_, var wait):
                    return ApiErrors.TooManyRequests(wait, seconds => $"Too many messages from your network; wait {Wait(seconds)}.");
            }

            try
            {
                answer = await chat.AnswerAsync(subscription, "widget", visitor, request.Message!, cancellationToken, remembered?.LedgerRequestId);
            }
            finally
            {
                if (answer?.Answered != true)
                {
                    await limits.GiveBackDailyAsync(subscriptionId, address, site, takenAt); // nothing was charged (or the visitor left first)
                }
            }
        }
        finally
        {
            if (remembered is not null && answer?.Answered != true)
            {
                await idempotency.AbandonAsync(remembered); // nothing lasting happened: a retry runs it
            }
        }

        if (!answer.Answered)
        {
            return Refusal(answer);
        }

        // Serialized once: a replay is byte for byte this answer.
        var body = JsonSerializer.Serialize(new { answer = answer.Text, handoff = answer.Handoff }, ApiJson.Options);
        if (remembered is not null)
        {
            await idempotency.CompleteAsync(remembered, StatusCodes.Status200OK, "application/json", body, CancellationToken.None);
        }

        return Results.Content(body, "application/json", Encoding.UTF8);
    }

    private static string Wait(int seconds) => seconds switch
    {
        <= 60 => $"{seconds} s",
        <= 90 * 60 => $"{(seconds + 59) / 60} minutes",
        _ => $"{(seconds + 3599) / 3600} hours", // the address's day: minutes by the hundred say little
    };

    /// <summary>
    /// CORS preflight: any origin may ask, because the real request is checked against the subscription's
    /// allowed domains (and carries no cookies); the actual response grants only that origin.
    /// </summary>
    private static IResult Preflight(HttpContext http)
    {
        var origin = http.Request.Headers.Origin.ToString();
        if (OriginRules.TryParseOrigin(origin, out _, out _))
        {
            Cors(http, origin);
            http.Response.Headers.AccessControlAllowMethods = "POST";
            http.Response.Headers.AccessControlAllowHeaders = "content-type, authorization";
            http.Response.Headers.AccessControlMaxAge = "600";
        }

        return Results.NoContent();
    }

    private static void Cors(HttpContext http, string origin)
    {
        http.Response.Headers.AccessControlAllowOrigin = origin;
        // The widget waits out a refusal's Retry-After, which a page of another origin reads only when exposed.
        http.Response.Headers.AccessControlExposeHeaders = "Retry-After";
        http.Response.Headers.Vary = "Origin";
    }

    // ---- Shared ----------------------------------------------------------------------------------------

    private static async Task<(MessageRequest? Request, IResult? Error)> ReadMessageAsync(HttpContext http, WebOptions options)
    {
        // Our pages always send JSON. Another site can POST here without asking (a form, or fetch in no-cors mode) only
        // with a body that is not declared JSON: refused, it cannot spend its visitors' demo messages or console credits.
        if (http.Request.ContentType is not { } type || !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            return (null, ApiErrors.Problem(StatusCodes.Status415UnsupportedMediaType, "Send the message as JSON with Content-Type: application/json.", "invalid_request_error", "unsupported_media_type"));
        }

        var (request, error) = await ApiRequests.ReadJsonAsync<MessageRequest>(http, 64 * 1024);
        if (error is not null)
        {
            return (null, error);
        }

        if (string.IsNullOrWhiteSpace(request!.Message))
        {
            return (null, ApiErrors.InvalidRequest("Write a message first.", "message", "empty_message"));
        }

        if (request.Message.Length > options.MaxMessageChars)
        {
            return (null, ApiErrors.InvalidRequest($"The message is {request.Message.Length} characters long; the limit is {options.MaxMessageChars}.", "message", "message_too_long"));
        }

        return (request with { Message = request.Message.Trim() }, null);
    }

    private static string Conversation(string? requested) =>
        requested is { Length: > 0 and <= 64 } && requested.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') ? requested : Guid.NewGuid().ToString("N");

    /// <summary>The widget's message ids: 128 to 256 random bits in lowercase hex.</summary>
    [GeneratedRegex("^[0-9a-f]{32,64}$")]
    private static partial Regex MessageIdPattern();

    private static string? Text(System.Text.Json.Nodes.JsonObject configuration, string key) =>
        configuration.TryGetPropertyValue(key, out var value) && value?.ToString() is { Length: > 0 } text ? text : null;

    private static IResult Refusal(PageAnswer answer) =>
        ApiErrors.Problem(answer.Status, answer.Error ?? "The agent did not answer.", answer.Status == StatusCodes.Status402PaymentRequired ? "insufficient_quota" : "server_error",
            answer.Status switch
            {
                StatusCodes.Status402PaymentRequired => "insufficient_credits",
                StatusCodes.Status403Forbidden => "subscription_suspended",
                _ => "agent_unavailable",
            });
}
