using System.Text.Json.Nodes;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>An answer for a buyer page, or why there is none (HTTP status and a message a buyer can read).</summary>
public sealed record PageAnswer(string? Text, long Charged, int Status, string? Error)
{
    /// <summary>Set when this answer handed the conversation to a person: what the visitor is told.</summary>
    public string? Handoff { get; init; }

    /// <summary>
    /// Ends once the answer's charge is written (it is written while the answer is sent); a page that reads the
    /// ledger for its reply waits for it. Never fails.
    /// </summary>
    public Task Settled { get; init; } = Task.CompletedTask;

    public bool Answered => Text is not null;

    public static PageAnswer Refused(int status, string error) => new(null, 0, status, error);
}

/// <summary>
/// The one seam through which the try page, the console's Run tab and the widget get answers.
/// </summary>
public interface IPageChat
{
    /// <summary>A demo answer from the offering's shared demo flow: no subscription, no charge, nothing stored.</summary>
    Task<PageAnswer> DemoAsync(CatalogueEntry offering, string visitorSession, string message, CancellationToken cancellationToken);

    /// <summary>An answer of the subscription's own agent, charged like an API message. <paramref name="channel"/> is console or widget.</summary>
    /// <param name="requestId">
    /// The ledger request id to hold and charge under: a retried message's (its idempotency entry's), so that it is
    /// charged at most once; null for a new one.
    /// </param>
    Task<PageAnswer> AnswerAsync(Subscription subscription, string channel, string conversation, string message, CancellationToken cancellationToken, string? requestId = null);
}

/// <summary>Runs an offering's shared demo flow (try mode). Nothing about the visitor is stored by it.</summary>
public interface IDemoAgent
{
    Task<string> AnswerAsync(CatalogueEntry offering, string sessionId, string input, CancellationToken cancellationToken);
}

/// <summary>
/// <see cref="IPageChat"/> over the chat pipeline's parts, as the API answers: hold the chat price while the turn is
/// prepared (<see cref="HeldPreparation"/>; <see cref="AgentTurns"/>: the subscription's own knowledge base, flow
/// and configuration), run it, settle while the answer is sent (<see cref="AnswerSettlements"/>), release on failure.
/// The agent runtime, turns and demo agent are optional: without them the pages say the agent is unavailable
/// instead of failing to start.
/// </summary>
public sealed class AgentPageChat(
    IChatCredits credits,
    ServedOfferings offerings,
    OfferingCatalogue catalogue,
    AdapterMetrics metrics,
    IOptions<ChatOptions> chatOptions,
    ILogger<AgentPageChat> logger,
    IAgentRuntime? runtime = null,
    AgentTurns? turns = null,
    AnswerSettlements? settlements = null,
    IDemoAgent? demo = null,
    Capabilities.Handoff.HandoffService? handoff = null) : IPageChat
{
    public async Task<PageAnswer> DemoAsync(CatalogueEntry offering, string visitorSession, string message, CancellationToken cancellationToken)
    {
        if (demo is null)
        {
            return PageAnswer.Refused(StatusCodes.Status503ServiceUnavailable, "Try mode is not available right now. Please come back later.");
        }

        try
        {
            using var timeout = RunDeadline.Start(chatOptions.Value.RunTimeout, cancellationToken);
            var answer = await demo.AnswerAsync(offering, $"demo:{offering.Slug}:{visitorSession}", message, timeout.Token);
            metrics.AgentRuns.WithLabels(offering.Slug, "try").Inc();
            return new PageAnswer(answer, 0, StatusCodes.Status200OK, null);
        }
        catch (Exception exception) when (exception is AgentUnavailableException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Demo agent of {Offering} failed: {Reason}", offering.Slug, exception.Message);
            return PageAnswer.Refused(StatusCodes.Status503ServiceUnavailable, "The demo agent did not answer. Please try again in a moment; this message was not counted.");
        }
    }

    public async Task<PageAnswer> AnswerAsync(Subscription subscription, string channel, string conversation, string message, CancellationToken cancellationToken, string? requestId = null)
    {
        if (!subscription.IsServable)
        {
            return PageAnswer.Refused(StatusCodes.Status403Forbidden, "This agent is paused or not active, so it cannot answer right now.");
        }

        if (offerings.Find(subscription.OfferingUuid) is not { } binding || catalogue.Find(binding.Slug) is not { } offering)
        {
            return PageAnswer.Refused(StatusCodes.Status503ServiceUnavailable, "This agent's offering is not served right now.");
        }

        if (!offering.Has(Core.Catalogue.Capability.Chat))
        {
            // An automation's console: its price book sells no message, so the hold could not price one.
            return PageAnswer.Refused(StatusCodes.Status404NotFound, $"The agent '{offering.Slug}' does not chat; nothing was charged.");
        }

        if (runtime is null || turns is null || settlements is null)
        {
            return PageAnswer.Refused(StatusCodes.Status503ServiceUnavailable, "The agent is not available right now; nothing was charged.");
        }

        using var early = await HeldPreparation.StartAsync(
            () => credits.HoldAsync(subscription, requestId ?? $"{channel}:{Guid.NewGuid():N}", null, cancellationToken),
            token => turns.PrepareAsync(subscription, offering, $"{subscription.ResourceUuid:N}:{channel}-{conversation}", message, new TurnSettings(), token),
            logger, cancellationToken);
        if (early.Attempt.Hold is not { } hold)
        {
            return early.Attempt.Refusal switch
            {
                Core.Credits.CreditRefusal.InsufficientCredits => PageAnswer.Refused(StatusCodes.Status402PaymentRequired, "Your organization has not enough credits left for this message. Ask your organization's owner to add credits."),
                Core.Credits.CreditRefusal.OfferingNotCovered => PageAnswer.Refused(StatusCodes.Status402PaymentRequired, Api.ApiErrors.CreditNotCoveringAgent),
                Core.Credits.CreditRefusal.FundingUnavailable => PageAnswer.Refused(StatusCodes.Status503ServiceUnavailable, "The organization's credits cannot be read right now; nothing was charged, try again shortly."),
                _ => PageAnswer.Refused(StatusCodes.Status403Forbidden, "This agent is paused or not active, so it cannot answer right now."),
            };
        }

        var settled = false;
        try
        {
            var turn = await early.Prepared;
            using var timeout = RunDeadline.Start(chatOptions.Value.RunTimeout, cancellationToken);
            var answer = await runtime.RunAsync(turn.Request, timeout.Token);
            // Charged from here on: the settle runs while the answer is sent, and charges the price held (AnswerSettlements).
            var settling = settlements.Settle(hold);
            settled = true;
            metrics.AgentRuns.WithLabels(offering.Slug, channel).Inc();
            // Same rule as the API: unanswered questions or a request for a person escalate the conversation.
            var notice = handoff is null ? null : await handoff.AfterAnswerAsync(subscription, $"{channel}-{conversation}", message, answer, turn.NothingRetrieved);
            return new PageAnswer(answer + ChatService.SourcesFooter(turn.Sources), hold.Credits, StatusCodes.Status200OK, null)
            {
                Handoff = notice?.Message,
                Settled = settling,
            };
        }
        catch (Exception exception) when (exception is AgentUnavailableException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Agent run of subscription {SubscriptionId} ({Channel}) failed: {Reason}", subscription.Id, channel, exception.Message);
            return PageAnswer.Refused(StatusCodes.Status503ServiceUnavailable, "The agent did not answer; nothing was charged. Please try again.");
        }
        finally
        {
            if (!settled)
            {
                await credits.ReleaseAsync(hold, CancellationToken.None);
            }
        }
    }
}
