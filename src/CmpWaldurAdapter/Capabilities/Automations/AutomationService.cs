using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Capabilities.Automations;

/// <summary>
/// Runs an automation offering's flow on a trigger: <c>POST /v1/runs</c> or the subscription's schedule. Each
/// run is recorded (status, input, output) and charged the offering's <c>automation_run</c> price on success;
/// a failed run costs nothing. An <c>Idempotency-Key</c> replay returns the stored answer and charges nothing.
/// </summary>
public sealed class AutomationService(
    CapabilityPipeline pipeline,
    IdempotencyStore idempotency,
    IDbContextFactory<AdapterDbContext> dbs,
    IOptions<AutomationOptions> options,
    TimeProvider clock,
    ILogger<AutomationService> logger)
{
    public const string What = "automation runs";

    /// <summary>The prefix of a run's id in the API (the row's id follows).</summary>
    public const string RunIdPrefix = "run_";

    /// <summary>A run's status until it succeeds or fails.</summary>
    public const string Running = "running";

    /// <summary>How long past the run timeout a run may still be finishing (its settle and row update) before it counts as interrupted.</summary>
    public static readonly TimeSpan InterruptedMargin = TimeSpan.FromMinutes(5);

    public async Task<IResult> TriggerAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await pipeline.AuthorizeAsync(http, Capability.Automation, What, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var (request, bytes, error) = await ApiRequests.ReadJsonWithBytesAsync<AutomationRunRequest>(http, options.Value.MaxInputBytes);
        if (error is not null)
        {
            return error;
        }

        if (request!.Input.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return ApiErrors.InvalidRequest("Send the run's input as {\"input\": …} (any JSON value, usually an object).", "input", "missing_input");
        }

        IdempotentRequest? remembered = null;
        var idempotencyKey = http.Request.Headers["Idempotency-Key"].FirstOrDefault();
        if (idempotencyKey is not null)
        {
            if (idempotencyKey.Length is 0 or > IdempotencyStore.MaxKeyLength)
            {
                return ApiErrors.InvalidRequest($"Idempotency-Key must be 1 to {IdempotencyStore.MaxKeyLength} characters.", "Idempotency-Key");
            }

            var (decision, entry) = await idempotency.BeginAsync(caller!.KeyId!.Value, IdempotencyStore.RunsScope, idempotencyKey, Convert.ToHexStringLower(SHA256.HashData(bytes)), pipeline.RunTimeout, cancellationToken);
            switch (decision)
            {
                case IdempotencyDecision.Replay:
                    http.Response.Headers["Idempotent-Replayed"] = "true";
                    return Results.Content(entry.ResponseBody, entry.ContentType, System.Text.Encoding.UTF8, entry.StatusCode);
                case IdempotencyDecision.InFlight:
                    return ApiErrors.Problem(StatusCodes.Status409Conflict, "A request with this Idempotency-Key is still being processed.", "invalid_request_error", "idempotency_key_in_use");
                case IdempotencyDecision.Mismatch:
                    return ApiErrors.Problem(StatusCodes.Status422UnprocessableEntity, "This Idempotency-Key was used with a different request body.", "invalid_request_error", "idempotency_key_reused");
                default:
                    remembered = entry;
                    break;
            }
        }

        var requestId = remembered?.LedgerRequestId ?? Guid.NewGuid().ToString("N");
        var (status, view, failure) = await RunAsync(caller!, "api", request.Input.GetRawText(), requestId, null, cancellationToken);
        if (remembered is not null)
        {
            if (status == StatusCodes.Status200OK)
            {
                await idempotency.CompleteAsync(remembered, status, "application/json", JsonSerializer.Serialize(view, ApiJson.Options), CancellationToken.None);
            }
            else
            {
                await idempotency.AbandonAsync(remembered);
            }
        }

        return failure ?? Results.Json(view, ApiJson.Options);
    }

    /// <summary>
    /// One run: recorded as running, the price held, the flow run, then settled (succeeded) or released (failed).
    /// Returns the HTTP status, the run, and the refusal or failure to answer with (null on success).
    /// </summary>
    internal async Task<(int Status, AutomationRunView? View, IResult? Failure)> RunAsync(CapabilityCaller caller, string trigger, string input, string requestId, DateTimeOffset? scheduledFor, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var run = new AutomationRun
        {
            Id = Guid.CreateVersion7(now),
            SubscriptionId = caller.Subscription.Id,
            Trigger = trigger,
            Status = Running,
            Input = input,
            ScheduledFor = scheduledFor,
            CreatedAt = now,
        };
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            if (scheduledFor is not { } firing)
            {
                db.AutomationRuns.Add(run);
                await db.SaveChangesAsync(cancellationToken);
            }
            // A firing run already (another replica checking the schedule at the same time) leaves the insert doing
            // nothing, rather than failing with a unique violation EF Core would log as an error.
            else if (await db.Database.ExecuteSqlAsync($"""
                INSERT INTO automation_runs (id, subscription_id, "trigger", status, input, credits_charged, scheduled_for, created_at)
                VALUES ({StoredValues.Uuid(db, run.Id)}, {StoredValues.Uuid(db, run.SubscriptionId)}, {trigger}, {Running}, {input}, {0L},
                        {StoredValues.Instant(db, firing)}, {StoredValues.Instant(db, now)})
                ON CONFLICT DO NOTHING
                """, cancellationToken) == 0)
            {
                return (StatusCodes.Status409Conflict, null, null); // this firing already ran (another replica)
            }
        }

        var (hold, refusal) = await pipeline.HoldAsync(caller, ActionClass.AutomationRun, 1, requestId, cancellationToken);
        if (refusal is not null)
        {
            await FinishAsync(run, "failed", null, "not enough credits", 0);
            return (StatusCodes.Status402PaymentRequired, View(run), refusal);
        }

        try
        {
            var answer = await pipeline.RunFlowAsync(caller, input, $"run:{run.Id:N}", cancellationToken);
            var charged = await pipeline.SettleAsync(hold!);
            await FinishAsync(run, "succeeded", answer, null, charged);
            return (StatusCodes.Status200OK, View(run), null);
        }
        catch (AgentUnavailableException unavailable)
        {
            logger.LogWarning("Automation run {RunId} of subscription {SubscriptionId} failed: {Reason}", run.Id, caller.Subscription.Id, unavailable.Message);
            await pipeline.ReleaseAsync(hold!, "the automation run failed");
            await FinishAsync(run, "failed", null, unavailable.PublicReason ?? "The flow failed; nothing was charged.", 0);
            return (unavailable.Transient ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status502BadGateway, View(run), CapabilityPipeline.Unavailable(unavailable));
        }
        catch
        {
            await pipeline.ReleaseAsync(hold!, "the automation run failed");
            await FinishAsync(run, "failed", null, "The run was interrupted; nothing was charged.", 0);
            throw;
        }
    }

    /// <summary>
    /// Marks failed the runs whose process stopped mid-run (killed, crashed, redeployed): no process can still finish a
    /// run older than the run timeout and <see cref="InterruptedMargin"/>. Its hold was never settled, so the ledger
    /// releases it when it expires: nothing was charged. Returns how many were marked.
    /// </summary>
    public async Task<int> FailInterruptedAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var startedBefore = now - pipeline.RunTimeout - InterruptedMargin;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var failed = await db.AutomationRuns.Where(r => r.Status == Running && r.CreatedAt < startedBefore).ExecuteUpdateAsync(set => set
            .SetProperty(r => r.Status, "failed")
            .SetProperty(r => r.Error, "The run was interrupted before it finished (the adapter stopped); nothing was charged.")
            .SetProperty(r => r.FinishedAt, now), cancellationToken);
        if (failed > 0)
        {
            logger.LogWarning("{Count} automation runs interrupted by a stopped adapter were marked failed", failed);
        }

        return failed;
    }

    /// <summary>
    /// A page of the subscription's runs, newest first (what the API and the console list), runs started in the
    /// same instant ordered by id so that paging sees each once; null when <paramref name="from"/> is not one of them.
    /// </summary>
    public async Task<ListPage<AutomationRunView>?> ListAsync(Guid subscriptionId, int limit, PageCursor? from, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var page = await NewestFirstPages.ReadAsync(db.AutomationRuns.AsNoTracking().Where(r => r.SubscriptionId == subscriptionId),
            r => r.CreatedAt, r => r.Id, limit, from, cancellationToken);
        return page is null ? null : new ListPage<AutomationRunView>([.. page.Data.Select(View)], page.HasMore);
    }

    public async Task<IResult> ListAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await pipeline.AuthorizeAsync(http, Capability.Automation, What, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var (query, invalid) = ListQuery.Read(http.Request, RunIdPrefix);
        if (invalid is not null)
        {
            return invalid;
        }

        return await ListAsync(caller!.Subscription.Id, query!.Limit, query.After, cancellationToken) is { } page
            ? Results.Json(AutomationRunList.Of(page), ApiJson.Options)
            : ListQuery.InvalidCursor();
    }

    private async Task FinishAsync(AutomationRun run, string status, string? output, string? error, long charged)
    {
        run.Status = status;
        run.Output = output;
        run.Error = error;
        run.CreditsCharged = charged;
        run.FinishedAt = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(CancellationToken.None);
        await db.AutomationRuns.Where(r => r.Id == run.Id).ExecuteUpdateAsync(set => set
            .SetProperty(r => r.Status, run.Status)
            .SetProperty(r => r.Output, run.Output)
            .SetProperty(r => r.Error, run.Error)
            .SetProperty(r => r.CreditsCharged, run.CreditsCharged)
            .SetProperty(r => r.FinishedAt, run.FinishedAt), CancellationToken.None);
    }

    private static AutomationRunView View(AutomationRun run) => new(
        ListQuery.IdOf(RunIdPrefix, run.Id),
        "automation.run",
        run.Trigger,
        run.Status,
        Parse(run.Input),
        run.Output is null ? null : Parse(run.Output),
        run.Error,
        run.CreditsCharged,
        run.ScheduledFor,
        run.CreatedAt.ToUnixTimeSeconds(),
        run.FinishedAt?.ToUnixTimeSeconds());

    /// <summary>A flow that answers JSON has its output returned as JSON; any other answer as a string.</summary>
    private static JsonNode? Parse(string text)
    {
        var trimmed = text.Trim();
        if (trimmed.StartsWith('{') || trimmed.StartsWith('[') || trimmed is "true" or "false" || (trimmed.Length > 0 && (char.IsAsciiDigit(trimmed[0]) || trimmed[0] is '"' or '-')))
        {
            try
            {
                return JsonNode.Parse(trimmed);
            }
            catch (JsonException)
            {
            }
        }

        return JsonValue.Create(text);
    }
}
