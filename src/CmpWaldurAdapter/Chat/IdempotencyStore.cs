using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat;

/// <summary>A stored outcome of a request made with an <c>Idempotency-Key</c>.</summary>
public sealed class IdempotentRequest
{
    public Guid Id { get; set; }

    public Guid ApiKeyId { get; set; }

    public string Key { get; set; } = string.Empty;

    /// <summary>SHA-256 of the request body: the same key with another body is a client bug (422).</summary>
    public string RequestHash { get; set; } = string.Empty;

    public bool Completed { get; set; }

    public int StatusCode { get; set; }

    public string? ContentType { get; set; }

    public string? ResponseBody { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset ExpiresAt { get; set; }
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
public sealed class IdempotencyStore(IDbContextFactory<AdapterDbContext> dbs, TimeProvider clock, IOptions<ChatOptions> options)
{
    public const int MaxKeyLength = 255;

    public async Task<(IdempotencyDecision Decision, IdempotentRequest Entry)> BeginAsync(Guid apiKeyId, string key, string requestHash, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var now = clock.GetUtcNow();
            await using var db = await dbs.CreateDbContextAsync(cancellationToken);
            var entry = new IdempotentRequest
            {
                Id = Guid.NewGuid(),
                ApiKeyId = apiKeyId,
                Key = key,
                RequestHash = requestHash,
                CreatedAt = now,
                ExpiresAt = now + options.Value.IdempotencyWindow,
            };
            db.IdempotentRequests.Add(entry);
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                return (IdempotencyDecision.Proceed, entry);
            }
            catch (DbUpdateException exception) when (DbErrors.IsUniqueViolation(exception) && attempt < 3)
            {
                db.ChangeTracker.Clear();
            }

            var existing = await db.IdempotentRequests.AsNoTracking().SingleOrDefaultAsync(r => r.ApiKeyId == apiKeyId && r.Key == key, cancellationToken);
            if (existing is null)
            {
                continue; // abandoned meanwhile: try again
            }

            if (existing.ExpiresAt < now)
            {
                await db.IdempotentRequests.Where(r => r.Id == existing.Id).ExecuteDeleteAsync(cancellationToken);
                continue;
            }

            if (existing.RequestHash != requestHash)
            {
                return (IdempotencyDecision.Mismatch, existing);
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

    /// <summary>Forgets a request that produced no lasting outcome (a transient failure), so a retry runs it again.</summary>
    public async Task AbandonAsync(IdempotentRequest entry)
    {
        await using var db = await dbs.CreateDbContextAsync();
        await db.IdempotentRequests.Where(r => r.Id == entry.Id && !r.Completed).ExecuteDeleteAsync();
    }
}
