using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat;

/// <summary>Builds the per-run settings of a subscription's flow from its configuration and retrieved context.</summary>
public interface IAgentTweaks
{
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, object?>> Build(AgentTweakInput input);
}

/// <summary>What one run's tweaks are built from: the subscription's own settings, its retrieved context, and the request's model settings.</summary>
public sealed record AgentTweakInput(
    Subscription Subscription,
    CatalogueEntry Offering,
    JsonObject Configuration,
    IReadOnlyList<KnowledgeChunk> Context,
    string? ClientInstructions,
    double? Temperature,
    int? MaxTokens);

/// <summary>
/// The chat pipeline: authenticate → subscription state → per-key rate limit → idempotency → hold
/// credits → retrieve from the subscription's own knowledge base → run its own flow → answer → settle.
/// Any failure before the answer releases the hold: a failed request costs nothing.
/// </summary>
public sealed partial class ChatService(
    ApiKeyService keys,
    KeyRateLimiter limiter,
    IdempotencyStore idempotency,
    IChatCredits credits,
    AnswerSettlements settlements,
    IAgentRuntime runtime,
    AgentTurns turns,
    CmpWaldurAdapter.Capabilities.Handoff.HandoffService handoff,
    ServedOfferings offerings,
    OfferingCatalogue catalogue,
    CmpWaldurAdapter.Observability.AdapterMetrics metrics,
    IOptions<ChatOptions> options,
    TimeProvider clock,
    ILogger<ChatService> logger)
{
    public const string ConversationHeader = "X-Conversation-Id";

    // The streaming result runs after the endpoint returns; it reaches the pipeline's parts through these.
    private TimeProvider Clock => clock;

    private ChatOptions Settings => options.Value;

    private IAgentRuntime Runtime => runtime;

    private IChatCredits Credits => credits;

    private AnswerSettlements Settlements => settlements;

    private IdempotencyStore Idempotency => idempotency;

    private CmpWaldurAdapter.Capabilities.Handoff.HandoffService Handoff => handoff;

    private ILogger Logger => logger;

    private CmpWaldurAdapter.Observability.AdapterMetrics Metrics => metrics;

    public async Task<IResult> ListModelsAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        return Results.Json(new ModelList("list", [ModelCardOf(caller!)]), ApiJson.Options);
    }

    /// <summary><c>GET /v1/models/{model}</c>: the key's agent, or 404 <c>model_not_found</c> for any other id, as OpenAI answers.</summary>
    public async Task<IResult> RetrieveModelAsync(HttpContext http, string model, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var card = ModelCardOf(caller!);
        return card.Id == model
            ? Results.Json(card, ApiJson.Options)
            : ApiErrors.NotFound($"The model '{Truncate(model)}' does not exist for this key; this key's agent is '{card.Id}' (see GET /v1/models).", "model_not_found", "model");
    }

    private ModelCard ModelCardOf(AuthenticatedKey caller) =>
        new(OfferingOf(caller.Subscription)?.Slug ?? "agent", "model", caller.Subscription.CreatedAt.ToUnixTimeSeconds(), "cmp-waldur-adapter");

    public async Task<IResult> CompleteAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken, recent: true);
        if (refusal is not null)
        {
            return refusal;
        }

        if (limiter.Admit(http, caller!.Key.Id.ToString("N")) is { } tooMany)
        {
            return tooMany;
        }

        var (request, bytes, error) = await ApiRequests.ReadJsonWithBytesAsync<ChatCompletionRequest>(http, options.Value.MaxBodyBytes, allowUnknownMembers: true);
        if (error is not null)
        {
            return error;
        }

        var subscription = caller.Subscription;
        var offering = OfferingOf(subscription);
        if (offering is null)
        {
            return ApiErrors.Problem(StatusCodes.Status503ServiceUnavailable, "This agent's offering is not served by this adapter right now.", "server_error", "offering_unavailable",
                headers: r => r.Headers.RetryAfter = "30");
        }

        if (!offering.Has(Capability.Chat))
        {
            // An automation's key: its price book sells no message, so the hold could not price one.
            return ApiErrors.NotFound($"The agent '{offering.Slug}' does not chat (see its own endpoints); nothing was charged.", "model_not_found", "model");
        }

        if (Validate(request!, offering) is { } invalid)
        {
            return invalid;
        }

        if (!runtime.Available)
        {
            return Unavailable(new AgentUnavailableException(CmpWaldurAdapter.Chat.Runtime.NoAgentRuntime.Reason, transient: true) { PublicReason = CmpWaldurAdapter.Chat.Runtime.NoAgentRuntime.Reason });
        }

        var conversation = http.Request.Headers[ConversationHeader].FirstOrDefault();
        if (conversation is not null && !ConversationPattern().IsMatch(conversation))
        {
            return ApiErrors.InvalidRequest("X-Conversation-Id may only use letters, digits and . _ : - and be at most 100 characters.", ConversationHeader);
        }

        // OpenAI clients put any end-user id into "user" (often an e-mail address): such ids name the conversation by their hash.
        conversation ??= request!.User is { Length: > 0 } user
            ? ConversationPattern().IsMatch(user) ? user : "u-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(user)))[..32]
            : Guid.NewGuid().ToString("N");

        http.Response.Headers[ConversationHeader] = conversation;

        IdempotentRequest? remembered = null;
        var idempotencyKey = http.Request.Headers["Idempotency-Key"].FirstOrDefault();
        if (idempotencyKey is not null)
        {
            if (idempotencyKey.Length is 0 or > IdempotencyStore.MaxKeyLength)
            {
                return ApiErrors.InvalidRequest($"Idempotency-Key must be 1 to {IdempotencyStore.MaxKeyLength} characters.", "Idempotency-Key");
            }

            var (decision, entry) = await idempotency.BeginAsync(caller.Key.Id, IdempotencyStore.ChatScope, idempotencyKey, Convert.ToHexStringLower(SHA256.HashData(bytes)), options.Value.RunTimeout, cancellationToken);
            switch (decision)
            {
                case IdempotencyDecision.Replay:
                    http.Response.Headers["Idempotent-Replayed"] = "true";
                    // A streamed answer is stored as its completion; a client that asked for a stream reads only events.
                    return request!.Stream == true && entry.StatusCode == StatusCodes.Status200OK && entry.ContentType == "application/json" && entry.ResponseBody is not null
                        ? new ReplayedStream(entry.ResponseBody, request.StreamOptions?.IncludeUsage == true)
                        : Results.Content(entry.ResponseBody, entry.ContentType, Encoding.UTF8, entry.StatusCode);
                case IdempotencyDecision.InFlight:
                    return ApiErrors.Problem(StatusCodes.Status409Conflict, "A request with this Idempotency-Key is still being processed.", "invalid_request_error", "idempotency_key_in_use");
                case IdempotencyDecision.Mismatch:
                    return ApiErrors.Problem(StatusCodes.Status422UnprocessableEntity, "This Idempotency-Key was used with a different request body.", "invalid_request_error", "idempotency_key_reused");
                case IdempotencyDecision.Proceed:
                    remembered = entry;
                    break;
                default:
                    throw new UnreachableException();
            }
        }

        var requestId = remembered?.LedgerRequestId ?? Guid.NewGuid().ToString("N");
        var earlier = EarlierTurns(request!);
        var run = new ChatRun(http, caller, subscription, offering, request!, conversation, requestId, remembered)
        {
            PromptTokens = EstimateTokens(PromptCharacters(request!)),
            StopSequences = StopSequences(request!.Stop)!,
            EarlierTurns = earlier,
            HandoffConversation = HandoffConversationOf(http, subscription, request!, conversation, earlier.Count > 0),
        };
        try
        {
            return await RunAsync(run, cancellationToken);
        }
        catch
        {
            if (remembered is not null)
            {
                await idempotency.AbandonAsync(remembered);
            }

            throw;
        }
    }

    private async Task<IResult> RunAsync(ChatRun run, CancellationToken cancellationToken)
    {
        // The caller may have been authenticated from memory; the hold re-checks the key and the subscription
        // in the database, and a refusal or a newer subscription row sends us back to the database. The message is
        // prepared while its credits are held (HeldPreparation), and prepared anew for a newer subscription row.
        using var early = await HeldPreparation.StartAsync(
            () => credits.HoldAsync(run.Subscription, run.RequestId, new Credits.ApiKeyProof(run.Caller.Key.Id, run.Caller.Key.Hash), cancellationToken),
            token => PrepareAsync(run, token), logger, cancellationToken);
        var attempt = early.Attempt;
        var preparing = attempt.Hold is null ? null : early.Prepared;
        if (attempt.Refusal is Core.Credits.CreditRefusal.KeyRevoked or Core.Credits.CreditRefusal.SubscriptionNotServable
            || (attempt.Hold is not null && attempt.SubscriptionVersion != run.Subscription.Version))
        {
            AuthenticatedKey? fresh;
            IResult? refusal;
            try
            {
                await early.DiscardAsync();
                keys.Forget(run.Subscription.Id);
                (fresh, refusal) = await ApiCaller.AuthenticateSecretAsync(run.Http, keys, cancellationToken);
            }
            catch when (attempt.Hold is { } taken)
            {
                // Taken before the region below that releases it: left, it would stay held until the sweeper's timeout.
                await credits.ReleaseAsync(taken, CancellationToken.None);
                throw;
            }

            if (refusal is not null || fresh!.Subscription.Id != run.Subscription.Id)
            {
                if (attempt.Hold is { } stale)
                {
                    await credits.ReleaseAsync(stale, CancellationToken.None);
                }

                await AbandonAsync(run);
                return refusal ?? ApiErrors.InvalidKey();
            }

            run = run with { Caller = fresh, Subscription = fresh.Subscription };
            if (attempt.Hold is null)
            {
                attempt = await credits.HoldAsync(run.Subscription, run.RequestId, new Credits.ApiKeyProof(fresh.Key.Id, fresh.Key.Hash), cancellationToken);
            }

            preparing = attempt.Hold is null ? null : PrepareAsync(run, cancellationToken);
        }

        if (attempt.Hold is not { } hold)
        {
            // Not remembered: once credits are added, the same Idempotency-Key runs the message.
            await AbandonAsync(run);
            return attempt.Refusal switch
            {
                Core.Credits.CreditRefusal.InsufficientCredits => ApiErrors.InsufficientCredits(
                    $"Your organization has not enough credits left for this message ({run.Offering.Pricing.PriceOf(ActionClass.ChatMessage)} credits). Ask your organization's owner to add credits."),
                Core.Credits.CreditRefusal.OfferingNotCovered => ApiErrors.InsufficientCredits(ApiErrors.CreditNotCoveringAgent),
                Core.Credits.CreditRefusal.FundingUnavailable => ApiErrors.CreditsUnavailable(),
                // A race with a change of the subscription, not a refusal: 409, which OpenAI's SDKs retry (they never retry a 403).
                _ => ApiErrors.Problem(StatusCodes.Status409Conflict, "This subscription changed while the message was being accepted; nothing was charged, retry.", "invalid_request_error", "subscription_changed",
                    headers: r => r.Headers.RetryAfter = "1"),
            };
        }

        // Settled here, or handed to the stream, which settles or releases it itself.
        var settled = false;
        try
        {
            var agent = await preparing!;
            if (run.Request.Stream == true)
            {
                settled = true;
                return new StreamingAnswer(this, run, agent, hold);
            }

            using var timeout = RunDeadline.Start(options.Value.RunTimeout, cancellationToken);
            var limit = run.AnswerLimit();
            var answer = limit.Cut(await runtime.RunAsync(agent, timeout.Token));
            // Charged from here on: the settle runs while the answer is written (AnswerSettlements says why).
            _ = settlements.Settle(hold);
            settled = true;
            metrics.AgentRuns.WithLabels(run.Offering.Slug, "api").Inc(); // the marketplace's run count
            var notice = await handoff.AfterAnswerAsync(run.Subscription, run.HandoffConversation, run.Input, answer, run.NothingRetrieved, HandoffTurns(run));
            if (notice is not null)
            {
                run.Http.Response.Headers[CmpWaldurAdapter.Capabilities.Handoff.HandoffService.HandoffHeader] = notice.Status;
            }

            var completion = Completion(run, answer, limit.FinishReason!, hold.Credits) with { Handoff = notice };
            return await FinishAsync(run, completion);
        }
        catch (Exception exception) when (settled)
        {
            // Only a plain answer fails here (a stream is returned as soon as it is handed over), and it was charged.
            return await ChargedButNotSentAsync(run, exception);
        }
        catch (AgentUnavailableException unavailable)
        {
            logger.LogWarning("Agent run failed for subscription {SubscriptionId}: {Reason}", run.Subscription.Id, unavailable.Message);
            if (!unavailable.Transient)
            {
                turns.ForgetWorkspace(run.Subscription.WorkspaceId);
            }

            await AbandonAsync(run);
            return Unavailable(unavailable);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            await AbandonAsync(run);
            return Unavailable(new AgentUnavailableException("The agent did not answer in time.", transient: true));
        }
        finally
        {
            if (!settled)
            {
                await credits.ReleaseAsync(hold, CancellationToken.None);
            }
        }
    }

    /// <summary>Everything the run needs from the subscription: its workspace, configuration, knowledge and settings.</summary>
    private async Task<AgentRequest> PrepareAsync(ChatRun run, CancellationToken cancellationToken)
    {
        var instructions = Instructions(run.Request);
        // A conversation the client names lives in the agent's memory; otherwise the client keeps the history and sends
        // it. Then the run has a session of its own: one named by `user` would hold the same turns twice.
        var session = $"{run.Subscription.ResourceUuid:N}:{run.Conversation}";
        if (!run.Http.Request.Headers.ContainsKey(ConversationHeader) && History(run.EarlierTurns, options.Value.MaxHistoryChars) is { } history)
        {
            instructions.Add(history);
            session += ":" + run.CompletionId;
        }

        var settings = new TurnSettings(
            instructions.Count > 0 ? string.Join("\n", instructions) : null,
            run.Request.Temperature,
            run.Request.MaxCompletionTokens ?? run.Request.MaxTokens);
        var turn = await turns.PrepareAsync(run.Subscription, run.Offering, session, run.Input, settings, cancellationToken);
        run.Sources = turn.Sources;
        run.NothingRetrieved = turn.NothingRetrieved;
        return turn.Request;
    }

    /// <summary>
    /// A plain answer charged but not sent (storing it for its Idempotency-Key failed, say). Its entry is marked as a
    /// stream's cut short is, not forgotten: the retry takes it over under the same ledger id, so the agent answers
    /// again and nothing more is charged. Forgotten, the retry would be a new request and charged again.
    /// </summary>
    private async Task<IResult> ChargedButNotSentAsync(ChatRun run, Exception exception)
    {
        logger.LogError(exception, "An answer of subscription {SubscriptionId} was charged but could not be sent", run.Subscription.Id);
        var retry = string.Empty;
        if (run.Idempotency is { } entry)
        {
            try
            {
                await idempotency.CutShortAsync(entry);
            }
            catch (Exception marking)
            {
                // Left unfinished, the key is taken over once the request's longest run has passed, under the same ledger id.
                logger.LogError(marking, "Could not free the Idempotency-Key of a charged answer of subscription {SubscriptionId} for its retry", run.Subscription.Id);
            }

            retry = " Retry with the same Idempotency-Key: the agent answers again and nothing more is charged.";
        }

        return ApiErrors.Problem(StatusCodes.Status500InternalServerError,
            $"The server failed to send the answer after the message was charged.{retry} Request id: {run.Http.TraceIdentifier}", "server_error", "internal_error");
    }

    private IResult? Validate(ChatCompletionRequest request, CatalogueEntry offering)
    {
        if (request.Model is { Length: > 0 } model && model != offering.Slug)
        {
            return ApiErrors.NotFound($"The model '{Truncate(model)}' does not exist for this key; this key's agent is '{offering.Slug}' (see GET /v1/models).", "model_not_found", "model");
        }

        if (request.Messages is { Count: > 0 } messages && messages.Count > options.Value.MaxMessages)
        {
            return ApiErrors.InvalidRequest($"At most {options.Value.MaxMessages} messages per request.", "messages", "too_many_messages");
        }

        if (request.Messages?.FindIndex(m => m is null) is >= 0 and var missing)
        {
            return ApiErrors.InvalidRequest($"messages[{missing}] is not a message object.", $"messages[{missing}]", "invalid_message");
        }

        // Every message, read here or not: text that cannot be read would otherwise fail the request later, after its charge.
        if (request.Messages?.FindIndex(m => !m.ContentIsUnicode) is >= 0 and var garbled)
        {
            return ApiErrors.InvalidRequest($"messages[{garbled}].content is not valid Unicode text: it has a lone surrogate escape (such as \\ud83d, from text cut in the middle of an emoji).",
                $"messages[{garbled}].content", "invalid_json");
        }

        // The fields kept as JSON are read as text later (some after the hold): a lone surrogate there would fail the request with a 500.
        if (new[] { ("response_format", request.ResponseFormat), ("tool_choice", request.ToolChoice), ("stop", request.Stop) }.FirstOrDefault(f => !ChatMessage.IsUnicode(f.Item2)) is (string param, _))
        {
            return ApiErrors.InvalidRequest($"{param} is not valid Unicode text: it has a lone surrogate escape (such as \\ud83d, from text cut in the middle of an emoji).", param, "invalid_json");
        }

        if (StopSequences(request.Stop) is null)
        {
            return ApiErrors.InvalidRequest($"stop must be a string or an array of at most {MaxStopSequences} strings.", "stop", "invalid_stop");
        }

        if (request.Temperature is { } temperature && (double.IsNaN(temperature) || temperature is < 0 or > 2))
        {
            return ApiErrors.InvalidRequest("temperature must be between 0 and 2.", "temperature", "invalid_temperature");
        }

        if (Unsupported(request) is { } unsupported)
        {
            return unsupported;
        }

        if ((request.MaxCompletionTokens ?? request.MaxTokens) is { } maxTokens && (maxTokens < 1 || maxTokens > options.Value.MaxCompletionTokens))
        {
            return ApiErrors.InvalidRequest($"max_tokens must be from 1 to {options.Value.MaxCompletionTokens}.", request.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens", "invalid_max_tokens");
        }

        if (Instructions(request).Sum(t => t.Length) is var instructions && instructions > options.Value.MaxInstructionChars)
        {
            return ApiErrors.InvalidRequest($"The system and developer messages are {instructions} characters long together; the limit is {options.Value.MaxInstructionChars}.", "messages", "instructions_too_long");
        }

        var input = InputOf(request);
        if (string.IsNullOrWhiteSpace(input))
        {
            return ApiErrors.InvalidRequest(request.Messages is null && request.Message is null
                ? "Send \"messages\" (OpenAI format) or \"message\" (a string)."
                : "The last user message is empty.", request.Message is null ? "messages" : "message", "empty_message");
        }

        if (input.Length > options.Value.MaxMessageChars)
        {
            return ApiErrors.InvalidRequest($"The message is {input.Length} characters long; the limit is {options.Value.MaxMessageChars}.", request.Message is null ? "messages" : "message", "message_too_long");
        }

        return null;
    }

    /// <summary>
    /// OpenAI options the agent cannot honour, refused as OpenAI refuses a parameter a model lacks: several choices,
    /// log probabilities, structured output and a forced tool call. Their values that ask for nothing pass.
    /// </summary>
    private static IResult? Unsupported(ChatCompletionRequest request)
    {
        if (request.N is { } n && n != 1)
        {
            return n < 1
                ? ApiErrors.InvalidRequest("n must be at least 1.", "n", "invalid_n")
                : ApiErrors.InvalidRequest("This agent gives one answer per request: n must be 1.", "n", "unsupported_parameter");
        }

        if (request.Logprobs == true || request.TopLogprobs is > 0)
        {
            var param = request.Logprobs == true ? "logprobs" : "top_logprobs";
            return ApiErrors.InvalidRequest("This agent does not report log probabilities.", param, "unsupported_parameter");
        }

        if (request.ResponseFormat is { ValueKind: not JsonValueKind.Null } format)
        {
            var type = format.ValueKind == JsonValueKind.Object && format.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            if (type is null)
            {
                return ApiErrors.InvalidRequest("response_format must be an object with a type.", "response_format", "invalid_response_format");
            }

            if (type != "text")
            {
                return ApiErrors.InvalidRequest($"This agent answers in prose: response_format '{Truncate(type)}' is not supported, only 'text'.", "response_format", "unsupported_value");
            }
        }

        if (request.ToolChoice is { ValueKind: not JsonValueKind.Null } choice
            && !(choice.ValueKind == JsonValueKind.String && choice.GetString() is "none" or "auto"))
        {
            return ApiErrors.InvalidRequest("This agent calls no client tools: tool_choice may only be 'none' or 'auto'.", "tool_choice", "unsupported_value");
        }

        return null;
    }

    /// <summary>
    /// The request's stop sequences, as OpenAI takes them: a string or an array of up to <see cref="MaxStopSequences"/>
    /// strings, empty ones ignored; none when absent or null; null when malformed (another type, too many).
    /// </summary>
    internal static IReadOnlyList<string>? StopSequences(JsonElement? stop)
    {
        if (stop is not { ValueKind: not JsonValueKind.Null } value)
        {
            return [];
        }

        if (value.ValueKind == JsonValueKind.String)
        {
            return value.GetString() is { Length: > 0 } one ? [one] : [];
        }

        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() > MaxStopSequences || value.EnumerateArray().Any(s => s.ValueKind != JsonValueKind.String))
        {
            return null;
        }

        return [.. value.EnumerateArray().Select(s => s.GetString()!).Where(s => s.Length > 0)];
    }

    /// <summary>
    /// The user and assistant turns before the message being answered, oldest first, at most <paramref name="limit"/>
    /// characters of them (the newest kept); null when there are none.
    /// </summary>
    internal static string? History(ChatCompletionRequest request, int limit) => History(EarlierTurns(request), limit);

    private static string? History(IReadOnlyList<(string Role, string Content)> turns, int limit)
    {
        var lines = new List<string>();
        var length = 0;
        for (var i = turns.Count - 1; i >= 0 && limit > 0; i--)
        {
            var line = $"{turns[i].Role}: {turns[i].Content}";
            if (length + line.Length > limit)
            {
                break;
            }

            lines.Add(line);
            length += line.Length + 1;
        }

        lines.Reverse();
        return lines.Count == 0 ? null : "The conversation so far, oldest first:\n" + string.Join("\n", lines);
    }

    /// <summary>
    /// The conversation an answer counts against for handoff (computed before the hold, with the earlier turns). A client
    /// that keeps the history itself and names no conversation (OpenAI's SDKs) would be a new conversation with every
    /// request, never reaching N unanswered questions. Its conversation is known instead by what every request of it
    /// repeats: the subscription, <c>user</c>, the first system message and the first user message. Only the count uses
    /// this name; the run keeps its session of its own (see PrepareAsync), so the agent's memory is not shared by it.
    /// </summary>
    private static string HandoffConversationOf(HttpContext http, Subscription subscription, ChatCompletionRequest request, string conversation, bool carriesHistory)
    {
        if (http.Request.Headers.ContainsKey(ConversationHeader) || !carriesHistory)
        {
            return conversation;
        }

        var messages = request.Messages!;
        var opening = new JsonArray(
            subscription.Id.ToString(),
            request.User ?? string.Empty,
            messages.FirstOrDefault(m => m.Role is "system" or "developer")?.Text ?? string.Empty,
            messages.First(m => m.Role == "user").Text);
        return "m-" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(opening.ToJsonString())))[..32];
    }

    /// <summary>The earlier turns the handoff record takes in: only those of a conversation named by them (else none).</summary>
    private static IReadOnlyList<(string Role, string Content)> HandoffTurns(ChatRun run) =>
        run.HandoffConversation == run.Conversation ? [] : run.EarlierTurns;

    /// <summary>The non-blank user and assistant turns before the last user message, oldest first.</summary>
    private static List<(string Role, string Content)> EarlierTurns(ChatCompletionRequest request)
    {
        if (request.Message is not null || request.Messages is not { Count: > 1 } messages)
        {
            return [];
        }

        return messages.Take(messages.FindLastIndex(m => m.Role == "user"))
            .Where(m => m.Role is "user" or "assistant" && !string.IsNullOrWhiteSpace(m.Text))
            .Select(m => (m.Role!, m.Text!.Trim())).ToList();
    }

    /// <summary>The request's own non-blank system and developer messages, in order.</summary>
    private static List<string> Instructions(ChatCompletionRequest request) =>
        request.Messages?.Where(m => m.Role is "system" or "developer").Select(m => m.Text).Where(t => !string.IsNullOrWhiteSpace(t)).Select(t => t!).ToList() ?? [];

    internal static string? InputOf(ChatCompletionRequest request) =>
        request.Message ?? request.Messages?.LastOrDefault(m => m.Role == "user")?.Text;

    private ChatCompletion Completion(ChatRun run, string answer, string finishReason, long charged) => new(
        run.CompletionId,
        "chat.completion",
        clock.GetUtcNow().ToUnixTimeSeconds(),
        run.Offering.Slug,
        [new ChatChoice(0, new AssistantMessage("assistant", answer + SourcesFooter(run)), finishReason)],
        Usage(run, answer, charged),
        Citations: run.Sources.Count > 0 ? run.Sources : null);

    /// <summary>The documents the answer drew on, named after it, so any client shows where it came from.</summary>
    public static string SourcesFooter(IReadOnlyList<string> sources) => sources.Count == 0 ? string.Empty : "\n\nSources: " + string.Join("; ", sources);

    private static string SourcesFooter(ChatRun run) => SourcesFooter(run.Sources);

    internal static ChatUsage Usage(ChatRun run, string answer, long charged)
    {
        var completion = EstimateTokens(answer.Length);
        return new ChatUsage(run.PromptTokens, completion, run.PromptTokens + completion, charged);
    }

    /// <summary>What the prompt tokens are estimated from: every message's text, or the simple message.</summary>
    private static int PromptCharacters(ChatCompletionRequest request) =>
        request.Messages?.Sum(m => m.Text?.Length ?? 0) ?? InputOf(request)!.Length;

    /// <summary>About four characters per token: the agent runtime reports no token counts.</summary>
    internal const int CharsPerToken = 4;

    /// <summary>OpenAI's limit on a request's stop sequences.</summary>
    private const int MaxStopSequences = 4;

    /// <summary>The tokens usage reports for a text of <paramref name="characters"/>, <see cref="CharsPerToken"/> each.</summary>
    private static int EstimateTokens(int characters) => characters == 0 ? 0 : Math.Max(1, (characters + CharsPerToken - 1) / CharsPerToken);

    private static IResult Unavailable(AgentUnavailableException exception) => exception.Transient
        ? ApiErrors.Problem(StatusCodes.Status503ServiceUnavailable, (exception.PublicReason ?? "The agent is temporarily unavailable.") + " Nothing was charged; retry shortly.", "server_error", "agent_unavailable",
            headers: r => r.Headers.RetryAfter = "5")
        : ApiErrors.Problem(StatusCodes.Status502BadGateway, "The agent failed to answer; nothing was charged.", "server_error", "agent_failed",
            headers: r => r.Headers.RetryAfter = "5");

    /// <summary>Remembers an answer for its Idempotency-Key (only answers: failures cost nothing and may be retried).</summary>
    private async Task<IResult> FinishAsync(ChatRun run, ChatCompletion completion)
    {
        if (run.Idempotency is not { } entry)
        {
            return Results.Json(completion, ApiJson.Options);
        }

        // Serialized once: the stored replay is byte for byte what this answer sends.
        var body = JsonSerializer.Serialize(completion, ApiJson.Options);
        await idempotency.CompleteAsync(entry, StatusCodes.Status200OK, "application/json", body, CancellationToken.None);
        return Results.Content(body, "application/json", Encoding.UTF8);
    }

    private async Task AbandonAsync(ChatRun run)
    {
        if (run.Idempotency is { } entry)
        {
            await idempotency.AbandonAsync(entry);
        }
    }

    private CatalogueEntry? OfferingOf(Subscription subscription) =>
        offerings.Find(subscription.OfferingUuid) is { } binding ? catalogue.Find(binding.Slug) : null;

    private static string Truncate(string text) => text.Length <= 60 ? text : text[..60] + "…";

    [GeneratedRegex("^[A-Za-z0-9._:-]{1,100}$")]
    private static partial Regex ConversationPattern();

    /// <summary>One request on its way through the pipeline.</summary>
    internal sealed record ChatRun(HttpContext Http, AuthenticatedKey Caller, Subscription Subscription, CatalogueEntry Offering, ChatCompletionRequest Request, string Conversation, string RequestId, IdempotentRequest? Idempotency)
    {
        public string CompletionId { get; } = "chatcmpl-" + Guid.NewGuid().ToString("N");

        public string Input => InputOf(Request)!;

        /// <summary>Names of the retrieved documents, when the subscription's settings ask for citations.</summary>
        public IReadOnlyList<string> Sources { get; set; } = [];

        /// <summary>The knowledge base was searched and returned no passage (counts as unanswered for handoff).</summary>
        public bool NothingRetrieved { get; set; }

        /// <summary>Estimated once, before the hold: after the charge nothing reads the messages' text again.</summary>
        public required int PromptTokens { get; init; }

        /// <summary>The turns the client sent before the question (read once, before the hold, as <see cref="PromptTokens"/>).</summary>
        public required IReadOnlyList<(string Role, string Content)> EarlierTurns { get; init; }

        /// <summary>The conversation the answer counts against for handoff (see <see cref="HandoffConversationOf"/>).</summary>
        public required string HandoffConversation { get; init; }

        /// <summary>The request's non-empty stop sequences (validated before the hold).</summary>
        public required IReadOnlyList<string> StopSequences { get; init; }

        /// <summary>Where this run's answer ends: its stop sequences and max_tokens.</summary>
        public AnswerLimit AnswerLimit() => new(StopSequences, Request.MaxCompletionTokens ?? Request.MaxTokens);
    }

    /// <summary>
    /// Streams the answer as OpenAI chunks. Until the agent's first piece arrives nothing is written (but a
    /// keepalive comment when it is slow, see <see cref="ChatOptions.StreamKeepAliveInterval"/>), so a
    /// failure up to then is a plain 502/503 answer. Charging rule: a completed answer is charged; an agent
    /// failure at any point releases the hold (an error event, then the connection is aborted, no <c>[DONE]</c>:
    /// nothing charged); a client that leaves cancels the run and is charged only if some of the answer had already
    /// reached it. Only a stream that reached its <c>[DONE]</c> is stored for its Idempotency-Key; a charged one cut
    /// short is retried at no charge. An answer cut at a stop sequence or max_tokens (<see cref="AnswerLimit"/>) is whole.
    /// </summary>
    private sealed class StreamingAnswer(ChatService service, ChatRun run, AgentRequest agent, ChatHold hold) : IResult
    {
        /// <summary>How long a failed stream's error event is given to leave before the connection is aborted.</summary>
        private static readonly TimeSpan AbortGrace = TimeSpan.FromMilliseconds(200);

        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var response = httpContext.Response;
            var aborted = httpContext.RequestAborted;
            var created = service.Clock.GetUtcNow().ToUnixTimeSeconds();
            var answer = new StringBuilder();
            long charged = 0;
            CmpWaldurAdapter.Capabilities.Handoff.HandoffNotice? notice = null;
            var settled = false;
            var delivered = false;
            var started = false;
            var released = false;
            var ended = false;
            var failedMidway = false;
            var limit = run.AnswerLimit();
            using var timeout = RunDeadline.Start(service.Settings.RunTimeout, aborted);

            async Task SendAsync(string text)
            {
                if (text.Length == 0)
                {
                    return;
                }

                if (!started)
                {
                    started = true;
                    Start(response);
                    await WriteAsync(response, Chunk(created, new ChunkDelta(Role: "assistant", Content: string.Empty), null), aborted);
                }

                await WriteAsync(response, Chunk(created, new ChunkDelta(Content: text), null), aborted);
                delivered = true;
                answer.Append(text);
            }

            try
            {
                await using (var pieces = service.Runtime.StreamAsync(agent, timeout.Token).GetAsyncEnumerator(timeout.Token))
                {
                    var keepAlive = new KeepAlive(response, service.Settings.StreamKeepAliveInterval, timeout);
                    while (limit.FinishReason is null && await keepAlive.WhileWaitingAsync(pieces.MoveNextAsync(), aborted))
                    {
                        await SendAsync(limit.Push(pieces.Current));
                    }
                }

                // Cut at a stop sequence or max_tokens, the rest of the run is not waited for: leaving the block above closed its stream.
                await SendAsync(limit.End());
                charged = await service.Settlements.SettleNowAsync(hold);
                settled = true;
                service.Metrics.AgentRuns.WithLabels(run.Offering.Slug, "api").Inc();
                if (!started)
                {
                    // The agent answered with nothing at all: still an answer.
                    started = true;
                    Start(response);
                    await WriteAsync(response, Chunk(created, new ChunkDelta(Role: "assistant", Content: string.Empty), null), aborted);
                }

                if (SourcesFooter(run) is { Length: > 0 } footer)
                {
                    await WriteAsync(response, Chunk(created, new ChunkDelta(Content: footer), null), aborted);
                }

                // Headers are gone by now: a handoff is flagged on the final chunk instead.
                notice = await service.Handoff.AfterAnswerAsync(run.Subscription, run.HandoffConversation, run.Input, answer.ToString(), run.NothingRetrieved, HandoffTurns(run));
                await WriteEndAsync(response, Chunk(created, new ChunkDelta(), limit.FinishReason) with { Handoff = notice },
                    run.Request.StreamOptions?.IncludeUsage == true ? Usage(run, answer.ToString(), charged) : null, aborted);
                ended = true;
            }
            catch (Exception exception) when (aborted.IsCancellationRequested && exception is OperationCanceledException or IOException or AgentUnavailableException)
            {
                service.Logger.LogInformation("The client left a stream of subscription {SubscriptionId}; the run was cancelled", run.Subscription.Id);
                if (!settled && delivered)
                {
                    charged = await service.Settlements.SettleNowAsync(hold);
                    settled = true;
                }
            }
            catch (Exception exception) when (exception is AgentUnavailableException or OperationCanceledException)
            {
                var unavailable = exception as AgentUnavailableException ?? new AgentUnavailableException("The agent did not answer in time.", transient: true);
                service.Logger.LogWarning("Stream of subscription {SubscriptionId} failed: {Reason}", run.Subscription.Id, unavailable.Message);
                if (!response.HasStarted)
                {
                    await service.Credits.ReleaseAsync(hold, CancellationToken.None);
                    released = true;
                    await Unavailable(unavailable).ExecuteAsync(httpContext);
                }
                else
                {
                    var error = new ApiErrorBody(new ApiError("The agent failed while answering; nothing was charged.", "server_error", unavailable.Transient ? "agent_unavailable" : "agent_failed", null));
                    await response.WriteAsync($"data: {JsonSerializer.Serialize(error, ApiJson.Options)}\n\n", CancellationToken.None);
                    await response.Body.FlushAsync(CancellationToken.None);
                    failedMidway = true;
                }
            }
            finally
            {
                if (!settled && !released)
                {
                    await service.Credits.ReleaseAsync(hold, CancellationToken.None);
                }

                if (run.Idempotency is { } entry)
                {
                    if (ended)
                    {
                        var replay = JsonSerializer.Serialize(service.Completion(run, answer.ToString(), limit.FinishReason!, charged) with { Handoff = notice }, ApiJson.Options);
                        await service.Idempotency.CompleteAsync(entry, StatusCodes.Status200OK, "application/json", replay, CancellationToken.None);
                    }
                    else if (settled)
                    {
                        // Charged for a part: stored, it would be replayed as the whole answer. The retry runs again
                        // under the same ledger id, which finds this charge, so it costs nothing more; once only.
                        await service.Idempotency.CutShortAsync(entry, chargeNextRetry: hold.PaidBefore);
                    }
                    else
                    {
                        await service.Idempotency.AbandonAsync(entry);
                    }
                }
            }

            if (failedMidway)
            {
                // No [DONE]: a client that ignores the error event (OpenAI's .NET SDK does) would take the part for the
                // whole answer. Aborted, the connection ends without HTTP's end of the body, which every client reports;
                // only now, so that a client seeing it finds the hold released and its Idempotency-Key free. The grace
                // lets the transport send the error event first: an abort drops what it has not sent yet.
                await Task.Delay(AbortGrace, CancellationToken.None);
                httpContext.Abort();
            }
        }

        internal static void Start(HttpResponse response)
        {
            if (response.HasStarted)
            {
                return; // a keepalive committed the stream already
            }

            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
        }

        private ChatCompletionChunk Chunk(long created, ChunkDelta delta, string? finish) =>
            new(run.CompletionId, "chat.completion.chunk", created, run.Offering.Slug, [new ChunkChoice(0, delta, finish)], null);

        internal static async Task WriteAsync(HttpResponse response, ChatCompletionChunk chunk, CancellationToken cancellationToken)
        {
            await response.WriteAsync("data: " + JsonSerializer.Serialize(chunk, ApiJson.Options) + "\n\n", cancellationToken);
            await response.Body.FlushAsync(cancellationToken);
        }

        /// <summary>How every stream ends, live or replayed: the finish chunk (with any handoff), the usage chunk when asked for, <c>[DONE]</c>.</summary>
        internal static async Task WriteEndAsync(HttpResponse response, ChatCompletionChunk finish, ChatUsage? usage, CancellationToken cancellationToken)
        {
            await WriteAsync(response, finish, cancellationToken);
            if (usage is not null)
            {
                await WriteAsync(response, finish with { Choices = [], Usage = usage, Handoff = null }, cancellationToken);
            }

            await response.WriteAsync("data: [DONE]\n\n", cancellationToken);
            await response.Body.FlushAsync(cancellationToken);
        }
    }

    /// <summary>
    /// Waits for the agent's next piece, writing an SSE comment each time <c>interval</c> passes without one. One
    /// timer serves the whole stream (a piece arriving does not restart it), so pieces that are already there cost
    /// nothing extra.
    /// </summary>
    private sealed class KeepAlive(HttpResponse response, TimeSpan interval, RunDeadline run)
    {
        private Task? _tick;

        public async ValueTask<bool> WhileWaitingAsync(ValueTask<bool> next, CancellationToken aborted)
        {
            if (next.IsCompleted)
            {
                return await next;
            }

            var waiting = next.AsTask();
            while (true)
            {
                _tick ??= Task.Delay(interval, run.Token);
                if (await Task.WhenAny(waiting, _tick) == waiting || _tick.IsCanceled)
                {
                    return await waiting;
                }

                _tick = null;
                try
                {
                    StreamingAnswer.Start(response);
                    await response.WriteAsync(": keepalive\n\n", aborted);
                    await response.Body.FlushAsync(aborted);
                }
                catch
                {
                    // The client is gone: stop the run and let its pending read end before the stream is disposed
                    // (an async iterator cannot be disposed while it is being moved on).
                    await run.CancelAsync();
                    await ((Task)waiting).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    throw;
                }
            }
        }
    }

    /// <summary>
    /// A stored answer replayed to a client that asked for a stream: the same events a live stream sends (the role,
    /// the whole text as one delta, the finish with any handoff, the usage chunk when asked for, <c>[DONE]</c>).
    /// </summary>
    private sealed class ReplayedStream(string storedCompletion, bool includeUsage) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var stored = JsonSerializer.Deserialize<ChatCompletion>(storedCompletion, ApiJson.Options)!;
            var choice = stored.Choices[0];
            var response = httpContext.Response;
            var aborted = httpContext.RequestAborted;
            ChatCompletionChunk Chunk(ChunkDelta delta, string? finish) =>
                new(stored.Id, "chat.completion.chunk", stored.Created, stored.Model, [new ChunkChoice(0, delta, finish)], null);

            StreamingAnswer.Start(response);
            await StreamingAnswer.WriteAsync(response, Chunk(new ChunkDelta(Role: "assistant", Content: string.Empty), null), aborted);
            if (choice.Message.Content.Length > 0)
            {
                await StreamingAnswer.WriteAsync(response, Chunk(new ChunkDelta(Content: choice.Message.Content), null), aborted);
            }

            await StreamingAnswer.WriteEndAsync(response, Chunk(new ChunkDelta(), choice.FinishReason) with { Handoff = stored.Handoff }, includeUsage ? stored.Usage : null, aborted);
        }
    }
}
