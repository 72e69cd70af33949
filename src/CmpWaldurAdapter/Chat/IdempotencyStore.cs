using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat;

/// <summary>A stored outcome of a request made with an <c>Idempotency-Key</c>.</summary>
public sealed class IdempotentRequest
{
    public Guid Id { get; set; }

    public Guid ApiKeyId { get; set; }

    /// <summary>
    /// Which endpoint the key was sent to (<see cref="IdempotencyStore.ChatScope"/>, <see cref="IdempotencyStore.RunsScope"/>,
    /// <see cref="IdempotencyStore.WidgetScope"/>):
    /// each has its own keys, so one endpoint's key never answers for the other's.
    /// </summary>
    public string Scope { get; set; } = IdempotencyStore.ChatScope;

    /// <summary>The client's Idempotency-Key as sent (at most <see cref="IdempotencyStore.MaxKeyLength"/> characters).</summary>
    public string Key { get; set; } = string.Empty;

    /// <summary>SHA-256 of the request body: the same key with another body is a client bug (422).</summary>
    public string RequestHash { get; set; } = string.Empty;

    public bool Completed { get; set; }

    public int StatusCode { get; set; }

    public string? ContentType { get; set; }

    public string? ResponseBody { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }

    /// <summary>
    /// The ledger request id of what this key's request holds and charges: <c>idem:{first entry's id}</c>, kept by an
    /// entry that takes over an abandoned one (the dead attempt's hold or charge is the retry's), new once an entry has
    /// expired (the key then names a new request, which is charged again).
    /// </summary>
    public string LedgerRequestId { get; set; } = string.Empty;
}

public enum IdempotencyDecision
{
    /// <summary>First time: go ahead, then complete or abandon.</summary>
    Proceed,

    /// <summary>Seen and finished: answer with the stored response, charge nothing.</summary>
    Replay,

    /// <summary>The first request with this key is still running (409).</summary>
    InFlight,

    /// <summary>The key was used with a different body (422).</summary>
    Mismatch,
}

/// <summary>
/// <c>Idempotency-Key</c> semantics as Stripe and the IETF draft describe them, enforced by a unique
/// index so two replicas racing the same key cannot both run it.
/// </summary>
/// <remarks>
/// An unfinished entry whose request cannot still be running (its process died: OOM, SIGKILL, a lost node) is
/// abandoned once it is older than the caller's longest run plus <see cref="AbandonMargin"/>, and the next retry
/// takes it over: it deletes exactly that row (by id, still unfinished) and inserts its own, so of two retries
/// racing for it the unique index lets one in and the other sees a fresh entry (409).
/// <para>
/// A request that was charged but could not give its whole answer (a client that left a stream midway) leaves its entry
/// unfinished and marked <see cref="CutShortStatus"/>; the next retry takes that over at once, in the same way.
/// </para>
/// <para>
/// Charging stays exactly-once because every attempt uses the entry's <see cref="IdempotentRequest.LedgerRequestId"/>,
/// which a takeover inherits. A takeover finds what the dead attempt left under that id: nothing (it holds and charges once), its
/// open hold (AlreadyHeld: the retry settles that hold; one the sweeper already released is taken anew), or its
/// charge (AlreadyCharged: the agent runs again for the answer that was never stored, and nothing more is charged; once:
/// that free run cut short again after a part leaves the next retry a new charge). A takeover that fails is not forgotten,
/// so the charge it inherited passes on to the next retry.
/// An attempt that was only slow, not dead, finishes on its own row id, which the takeover deleted: its answer
/// is not stored over the retry's, and both settle the same hold, so the message is still charged at most once.
/// </para>
/// </remarks>
public sealed class IdempotencyStore(IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock, IOptions<ChatOptions> options)
{
    public const int MaxKeyLength = 255;

    /// <summary><c>/v1/chat/completions</c>.</summary>
    public const string ChatScope = "chat";

    /// <summary><c>/v1/runs</c>.</summary>
    public const string RunsScope = "runs";

    /// <summary>
    /// <c>/widget/v1/chat</c>: the publishable key's id, and a key naming the visitor (from the signed visitor token)
    /// before the widget's message id, so one visitor can never be answered from another's entry.
    /// </summary>
    public const string WidgetScope = "widget";

    public const int MaxScopeLength = 16;

    /// <summary>
    /// Time past the caller's run timeout before an unfinished request counts as abandoned: what runs outside that
    /// timeout (authentication, the hold, retrieval attempts, database waits, settling and storing the answer),
    /// with room to spare. A live request taken over would share its hold with the retry, and one of them releasing
    /// it would leave the other's answer free; a dead one's key waits minutes, not the 24 hours of before.
    /// </summary>
    public static readonly TimeSpan AbandonMargin = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The status of an unfinished entry whose request was charged but whose answer never reached its end (a client
    /// that left a stream midway), as nginx logs a client that closed its request: the next retry takes it over at once.
    /// </summary>
    public const int CutShortStatus = 499;

    /// <param name="scope">The endpoint the key was sent to (<see cref="ChatScope"/>, <see cref="RunsScope"/>, <see cref="WidgetScope"/>).</param>
    /// <param name="key">The Idempotency-Key as sent: 1 to <see cref="MaxKeyLength"/> characters, checked by the caller.</param>
    /// <param name="longestRun">The caller's own time limit on the work it does for the request (its run timeout).</param>
    public async Task<(IdempotencyDecision Decision, IdempotentRequest Entry)> BeginAsync(Guid apiKeyId, string scope, string key, string requestHash, TimeSpan longestRun, CancellationToken cancellationToken)
    {
        string? inherited = null;
        for (var attempt = 0; ; attempt++)
        {
            var now = clock.GetUtcNow();
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            var id = Guid.NewGuid();
            var entry = new IdempotentRequest
            {
                Id = id,
                ApiKeyId = apiKeyId,
                Scope = scope,
                Key = key,
                RequestHash = requestHash,
                CreatedAt = now,
                ExpiresAt = now + options.Value.IdempotencyWindow,
                LedgerRequestId = inherited ?? OwnLedgerRequestId(id),
            };
            // A key already stored (a client's retry, the usual reason to send one) leaves the insert doing nothing, rather
            // than failing with a unique violation that EF Core would log as an error for every replay.
            if (await db.Database.ExecuteSqlAsync($"""
                INSERT INTO idempotent_requests (id, api_key_id, scope, "key", request_hash, completed, status_code, created_at, expires_at, ledger_request_id)
                VALUES ({StoredValues.Uuid(db, id)}, {StoredValues.Uuid(db, apiKeyId)}, {scope}, {key}, {requestHash}, {false}, {0},
                        {StoredValues.Instant(db, entry.CreatedAt)}, {StoredValues.Instant(db, entry.ExpiresAt)}, {entry.LedgerRequestId})
                ON CONFLICT DO NOTHING
                """, cancellationToken) == 1)
            {
                return (IdempotencyDecision.Proceed, entry);
            }

            if (attempt == 3)
            {
                throw new InvalidOperationException($"The Idempotency-Key entry of API key {apiKeyId} kept changing under this request ({scope}); gave up after {attempt + 1} attempts.");
            }

            var existing = await db.IdempotentRequests.AsNoTracking().SingleOrDefaultAsync(r => r.ApiKeyId == apiKeyId && r.Scope == scope && r.Key == key, cancellationToken);
            if (existing is null)
            {
                continue; // abandoned meanwhile: try again
            }

            if (existing.ExpiresAt < now)
            {
                // Past its window the key names a new request: a new ledger id, or its old charge would make it free.
                await db.IdempotentRequests.Where(r => r.Id == existing.Id).ExecuteDeleteAsync(cancellationToken);
                inherited = null;
                continue;
            }

            if (existing.RequestHash != requestHash)
            {
                return (IdempotencyDecision.Mismatch, existing);
            }

            if (!existing.Completed && (existing.StatusCode == CutShortStatus || existing.CreatedAt + longestRun + AbandonMargin < now))
            {
                // Only while still unfinished: an owner that completes meanwhile keeps its answer for replay.
                // A cut-short entry's owner has finished: its charge passes to the retry with the ledger id.
                await db.IdempotentRequests.Where(r => r.Id == existing.Id && !r.Completed).ExecuteDeleteAsync(cancellationToken);
                inherited = existing.LedgerRequestId;
                continue;
            }

            return (existing.Completed ? IdempotencyDecision.Replay : IdempotencyDecision.InFlight, existing);
        }
    }

    public async Task CompleteAsync(IdempotentRequest entry, int statusCode, string contentType, string body, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        await db.IdempotentRequests.Where(r => r.Id == entry.Id).ExecuteUpdateAsync(set => set
            .SetProperty(r => r.Completed, true)
            .SetProperty(r => r.StatusCode, statusCode)
            .SetProperty(r => r.ContentType, contentType)
            .SetProperty(r => r.ResponseBody, body), cancellationToken);
    }

    /// <summary>
    /// Gives up a request that was charged but whose answer was cut short (<see cref="CutShortStatus"/>): nothing is
    /// stored to replay, and the next retry takes the entry over at once, keeping its ledger request id, so the agent
    /// runs again for the whole answer and the retry's hold finds the charge (nothing more is charged).
    /// </summary>
    /// <param name="chargeNextRetry">
    /// This attempt was itself that free run, and it too was cut short after delivering a part: the charge has bought
    /// its one free run, and the entry takes a ledger id of its own, so the next retry is held and charged anew.
    /// Without it, a client leaving each retry midway would have the agent run again and again for one charge.
    /// </param>
    public async Task CutShortAsync(IdempotentRequest entry, bool chargeNextRetry = false)
    {
        var ledgerRequestId = chargeNextRetry ? OwnLedgerRequestId(entry.Id) : entry.LedgerRequestId;
        await using var db = await dbs.CreateDbContextAsync();
        await db.IdempotentRequests.Where(r => r.Id == entry.Id && !r.Completed).ExecuteUpdateAsync(set => set
            .SetProperty(r => r.StatusCode, CutShortStatus)
            .SetProperty(r => r.LedgerRequestId, ledgerRequestId));
    }

    /// <summary>
    /// Forgets a request that produced no lasting outcome (a transient failure), so a retry runs it again. An entry that
    /// took over an earlier attempt's ledger id is not forgotten but left for the next retry to take over (as a cut-short
    /// one is): that id may carry the earlier attempt's charge, and a retry under a new id would be charged again.
    /// </summary>
    public async Task AbandonAsync(IdempotentRequest entry)
    {
        await using var db = await dbs.CreateDbContextAsync();
        if (entry.LedgerRequestId != OwnLedgerRequestId(entry.Id))
        {
            await db.IdempotentRequests.Where(r => r.Id == entry.Id && !r.Completed).ExecuteUpdateAsync(set => set.SetProperty(r => r.StatusCode, CutShortStatus));
            return;
        }

        await db.IdempotentRequests.Where(r => r.Id == entry.Id && !r.Completed).ExecuteDeleteAsync();
    }

    /// <summary>The ledger request id an entry holds and charges under unless it took over an earlier attempt's.</summary>
    private static string OwnLedgerRequestId(Guid entryId) => $"idem:{entryId:N}";
}
