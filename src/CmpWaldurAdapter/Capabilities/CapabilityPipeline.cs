using System.Globalization;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Capabilities;

/// <summary>A caller of a capability endpoint: its key, subscription and the subscription's offering.</summary>
public sealed record CapabilityCaller(Guid? KeyId, Subscription Subscription, CatalogueEntry Offering);

/// <summary>Credits held for one capability request.</summary>
public sealed record CapabilityHold(Guid Reservation, long Credits);

/// <summary>
/// What every capability beyond chat shares with the chat pipeline: secret-key authentication, the
/// subscription's offering (a capability it does not enable answers 404 <c>model_not_found</c> and costs
/// nothing), the per-key rate limit, holding the action's price, running the subscription's own flow and
/// settling or releasing the hold.
/// </summary>
public sealed class CapabilityPipeline(
    ApiKeyService keys,
    KeyRateLimiter limiter,
    ServedOfferings offerings,
    OfferingCatalogue catalogue,
    CreditLedger ledger,
    PriceBooks priceBooks,
    IAgentRuntime runtime,
    IAgentTweaks tweaks,
    IDbContextFactory<AdapterDbContext> dbs,
    IOptions<ChatOptions> chatOptions)
{
    public IAgentRuntime Runtime => runtime;

    /// <summary>The longest one flow run may take (<see cref="RunFlowAsync"/>): the chat's run timeout.</summary>
    public TimeSpan RunTimeout => chatOptions.Value.RunTimeout;

    /// <summary>Authenticates the caller and checks its offering enables <paramref name="capability"/>.</summary>
    public async Task<(CapabilityCaller? Caller, IResult? Refusal)> AuthorizeAsync(HttpContext http, Capability capability, string what, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return (null, refusal);
        }

        return Authorize(caller!.Subscription, (caller.Key.Id, http), capability, what);
    }

    /// <summary>The same checks for a subscription; a scheduled run (no key, no request) is not rate limited.</summary>
    public (CapabilityCaller? Caller, IResult? Refusal) Authorize(Subscription subscription, (Guid Id, HttpContext Http)? key, Capability capability, string what)
    {
        var offering = OfferingOf(subscription);
        if (offering is null)
        {
            return (null, ApiErrors.Problem(StatusCodes.Status503ServiceUnavailable, "This agent's offering is not served by this adapter right now.", "server_error", "offering_unavailable"));
        }

        if (!offering.Has(capability))
        {
            return (null, ApiErrors.NotFound($"The agent '{offering.Slug}' does not offer {what}; nothing was charged.", "model_not_found", "model"));
        }

        if (key is { } caller && limiter.Admit(caller.Http, caller.Id.ToString("N")) is { } tooMany)
        {
            return (null, tooMany);
        }

        if (!runtime.Available)
        {
            return (null, ApiErrors.Problem(StatusCodes.Status503ServiceUnavailable, CmpWaldurAdapter.Chat.Runtime.NoAgentRuntime.Reason + " Nothing was charged; retry shortly.", "server_error", "agent_unavailable"));
        }

        return (new CapabilityCaller(key?.Id, subscription, offering), null);
    }

    public CatalogueEntry? OfferingOf(Subscription subscription) =>
        offerings.Find(subscription.OfferingUuid) is { } binding ? catalogue.Find(binding.Slug) : null;

    /// <summary>Holds <paramref name="quantity"/> times the action's price; a 402 refusal when the balance cannot cover it.</summary>
    public async Task<(CapabilityHold? Hold, IResult? Refusal)> HoldAsync(CapabilityCaller caller, ActionClass action, int quantity, string requestId, CancellationToken cancellationToken)
    {
        var price = priceBooks.Quote(caller.Subscription.OfferingUuid, action);
        var credits = price.Credits * quantity;
        var hold = await ledger.ReserveAsync(caller.Subscription.CustomerId, caller.Subscription.Id, caller.Subscription.OfferingUuid, action, credits, price.PriceBookVersion, requestId, cancellationToken: cancellationToken);
        return hold.Status switch
        {
            ReservationStatus.Held or ReservationStatus.AlreadyHeld => (new CapabilityHold(hold.ReservationId!.Value, hold.Credits), null),
            ReservationStatus.AlreadyCharged => (new CapabilityHold(Guid.Empty, 0), null),
            _ => (null, hold.Refusal switch
            {
                CreditRefusal.FundingUnavailable => ApiErrors.CreditsUnavailable(),
                CreditRefusal.SubscriptionNotServable => ApiErrors.SubscriptionSuspended("This subscription is not active (paused, downscaled or ended)."),
                CreditRefusal.KeyRevoked => ApiErrors.InvalidKey(),
                CreditRefusal.OfferingNotCovered => ApiErrors.InsufficientCredits(ApiErrors.CreditNotCoveringAgent),
                _ => ApiErrors.InsufficientCredits($"Your organization has not enough credits left for this request ({credits} credits). Ask your organization's owner to add credits."),
            }),
        };
    }

    public async Task<long> SettleAsync(CapabilityHold hold) =>
        hold.Reservation == Guid.Empty ? 0 : (await ledger.SettleAsync(hold.Reservation, cancellationToken: CancellationToken.None)) switch
        {
            { Status: SettleStatus.Settled } settled => settled.Credits,
            _ => 0,
        };

    public async Task ReleaseAsync(CapabilityHold hold, string reason)
    {
        if (hold.Reservation != Guid.Empty)
        {
            await ledger.ReleaseAsync(hold.Reservation, reason, CancellationToken.None);
        }
    }

    /// <summary>Runs the subscription's own flow once with <paramref name="input"/>; its settings fill the prompt as for chat.</summary>
    public async Task<string> RunFlowAsync(CapabilityCaller caller, string input, string session, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var workspace = await db.Workspaces.AsNoTracking().SingleAsync(w => w.Id == caller.Subscription.WorkspaceId, cancellationToken);
        var configuration = JsonNode.Parse(caller.Subscription.Configuration) as JsonObject ?? [];
        var settings = tweaks.Build(new AgentTweakInput(caller.Subscription, caller.Offering, configuration, [], null, null, null));
        using var timeout = RunDeadline.Start(RunTimeout, cancellationToken);
        try
        {
            return await runtime.RunAsync(new AgentRequest(caller.Subscription, workspace, $"{caller.Subscription.ResourceUuid:N}:{session}", input, settings), timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new AgentUnavailableException("The flow did not answer in time.", transient: true);
        }
    }

    /// <summary>The answer to a failed run: 503 (retry) or 502, nothing charged.</summary>
    public static IResult Unavailable(AgentUnavailableException exception) => exception.Transient
        ? ApiErrors.Problem(StatusCodes.Status503ServiceUnavailable, (exception.PublicReason ?? "The agent is temporarily unavailable.") + " Nothing was charged; retry shortly.", "server_error", "agent_unavailable",
            headers: r => r.Headers.RetryAfter = "5")
        : ApiErrors.Problem(StatusCodes.Status502BadGateway, "The agent failed to answer; nothing was charged.", "server_error", "agent_failed",
            headers: r => r.Headers.RetryAfter = "5");
}
