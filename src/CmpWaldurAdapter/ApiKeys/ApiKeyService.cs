using System.Collections.Concurrent;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.ApiKeys;

/// <summary>A key just created: the only moment its plain text exists outside the caller.</summary>
public sealed record CreatedKey(ApiKey Key, string Plaintext);

/// <summary>A presented key that matched, with its subscription as stored right now.</summary>
public sealed record AuthenticatedKey(ApiKey Key, Subscription Subscription);

/// <summary>
/// Creates, lists, regenerates and revokes subscription API keys, and checks presented keys.
/// <see cref="AuthenticateAsync"/> reads the database, so a revoked or regenerated key stops working at once
/// on every replica. The chat hot path uses <see cref="AuthenticateRecentAsync"/> instead, whose answer may be
/// a few seconds old: it is only safe together with a credit hold that re-checks the key and the
/// subscription in the database (see <c>CreditLedger.ReserveAsync</c>'s <c>apiKeyId</c>).
/// </summary>
public sealed class ApiKeyService(IDbContextFactory<AdapterDbContext> dbs, IDataProtectionProvider protection, TimeProvider clock)
{
    /// <summary>How many live keys one subscription may have.</summary>
    public const int MaxKeysPerSubscription = 25;

    /// <summary>How long a recent authentication is reused; the hold's own checks keep it exact meanwhile.</summary>
    public static readonly TimeSpan RecentLifetime = TimeSpan.FromSeconds(5);

    /// <summary>Bound on remembered authentications (cleared wholesale beyond it: a rare, cheap miss storm).</summary>
    private const int MaxRecent = 50_000;

    private readonly ConcurrentDictionary<string, (AuthenticatedKey Caller, DateTimeOffset Expires)> _recent = new(StringComparer.Ordinal);

    private const string RevealPurpose = "CmpWaldurAdapter.ApiKeys.Reveal";

    /// <summary>Last-used times are written at most this often per key, so a busy key costs no extra writes.</summary>
    private static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _lastUsedWritten = new();

    public async Task<CreatedKey> CreateAsync(Guid subscriptionId, ApiKeyKind kind, string name, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        // Refused at once when already full; the count after the insert below is the one that holds in a race.
        if (await CountLiveAsync(db, subscriptionId, cancellationToken) >= MaxKeysPerSubscription)
        {
            throw TooManyKeys();
        }

        var plaintext = ApiKeyFormat.Generate(kind);
        var prefix = ApiKeyFormat.PrefixOf(plaintext);
        var key = new ApiKey
        {
            Id = Guid.NewGuid(),
            SubscriptionId = subscriptionId,
            Kind = kind,
            Name = string.IsNullOrWhiteSpace(name) ? DefaultName(kind) : name.Trim(),
            Prefix = prefix,
            Hash = ApiKeyFormat.Hash(plaintext),
            CreatedAt = clock.GetUtcNow(),
        };
        db.ApiKeys.Add(key);

        // Not cancellable from here: a key inserted is either kept or taken back, never left over the limit.
        await db.SaveChangesAsync(CancellationToken.None);

        // Counted again with this key in, on every replica and both databases without a lock: each racing request inserts
        // before it counts, so the n-th to count sees at least n new keys and no more requests pass than places were free
        // (two racing near the limit may both be refused, which is safe). Over the limit, this key is taken back.
        if (await CountLiveAsync(db, subscriptionId, CancellationToken.None) > MaxKeysPerSubscription)
        {
            await db.ApiKeys.Where(k => k.Id == key.Id).ExecuteDeleteAsync(CancellationToken.None);
            throw TooManyKeys();
        }

        return new CreatedKey(key, plaintext);
    }

    private static Task<int> CountLiveAsync(AdapterDbContext db, Guid subscriptionId, CancellationToken cancellationToken) =>
        db.ApiKeys.CountAsync(k => k.SubscriptionId == subscriptionId && k.RevokedAt == null, cancellationToken);

    private static InvalidOperationException TooManyKeys() =>
        new($"A subscription can have at most {MaxKeysPerSubscription} keys; delete one first.");

    /// <summary>Gives the key a new value; the old value stops working with this call.</summary>
    public async Task<CreatedKey?> RegenerateAsync(Guid subscriptionId, Guid keyId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var key = await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == keyId && k.SubscriptionId == subscriptionId && k.RevokedAt == null, cancellationToken);
        if (key is null)
        {
            return null;
        }

        var plaintext = ApiKeyFormat.Generate(key.Kind);
        key.Prefix = ApiKeyFormat.PrefixOf(plaintext);
        key.Hash = ApiKeyFormat.Hash(plaintext);
        key.LastUsedAt = null;
        await db.SaveChangesAsync(cancellationToken);
        Forget(subscriptionId);
        return new CreatedKey(key, plaintext);
    }

    public async Task<bool> RevokeAsync(Guid subscriptionId, Guid keyId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var now = clock.GetUtcNow();
        var revoked = await db.ApiKeys.Where(k => k.Id == keyId && k.SubscriptionId == subscriptionId && k.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(k => k.RevokedAt, now), cancellationToken) == 1;
        Forget(subscriptionId);
        return revoked;
    }

    /// <summary>Revokes every key of a subscription (it ended). Returns how many were live.</summary>
    public async Task<int> RevokeAllAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var now = clock.GetUtcNow();
        await db.KeyReveals.Where(r => db.ApiKeys.Any(k => k.Id == r.ApiKeyId && k.SubscriptionId == subscriptionId))
            .ExecuteUpdateAsync(set => set.SetProperty(r => r.KeyCipher, (string?)null), cancellationToken);
        var revoked = await db.ApiKeys.Where(k => k.SubscriptionId == subscriptionId && k.RevokedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(k => k.RevokedAt, now), cancellationToken);
        Forget(subscriptionId);
        return revoked;
    }

    public async Task<IReadOnlyList<ApiKey>> ListAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.ApiKeys.AsNoTracking()
            .Where(k => k.SubscriptionId == subscriptionId && k.RevokedAt == null)
            .OrderBy(k => k.CreatedAt)
            .ToListAsync(cancellationToken);
    }

    /// <summary>The key and its subscription, or null for anything that is not a live key (malformed, unknown, revoked).</summary>
    public async Task<AuthenticatedKey?> AuthenticateAsync(string? presented, CancellationToken cancellationToken)
    {
        if (!ApiKeyFormat.TryParse(presented, out _, out var prefix))
        {
            return null;
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var match = await db.ApiKeys.AsNoTracking()
            .Where(k => k.Prefix == prefix && k.RevokedAt == null)
            .Join(db.Subscriptions.AsNoTracking(), k => k.SubscriptionId, s => s.Id, (k, s) => new { Key = k, Subscription = s })
            .FirstOrDefaultAsync(cancellationToken);
        if (match is null || !ApiKeyFormat.HashesEqual(match.Key.Hash, ApiKeyFormat.Hash(presented!)))
        {
            return null;
        }

        await TouchAsync(db, match.Key, cancellationToken);
        return new AuthenticatedKey(match.Key, match.Subscription);
    }

    /// <summary>
    /// <see cref="AuthenticateAsync"/>, answered from memory for a few seconds after a database read. The caller must
    /// confirm the key and the subscription's state with the credit hold, and <see cref="Forget"/> them when it refuses.
    /// </summary>
    public async Task<AuthenticatedKey?> AuthenticateRecentAsync(string? presented, CancellationToken cancellationToken)
    {
        if (!ApiKeyFormat.TryParse(presented, out _, out _))
        {
            return null;
        }

        var hash = ApiKeyFormat.Hash(presented!);
        var now = clock.GetUtcNow();
        if (_recent.TryGetValue(hash, out var recent) && recent.Expires > now)
        {
            if (LastUsedDue(recent.Caller.Key.Id, now))
            {
                await using var db = await dbs.CreateDbContextAsync(cancellationToken);
                await TouchAsync(db, recent.Caller.Key, cancellationToken);
            }

            return recent.Caller;
        }

        var caller = await AuthenticateAsync(presented, cancellationToken);
        if (caller is null)
        {
            _recent.TryRemove(hash, out _);
            return null;
        }

        if (_recent.Count >= MaxRecent)
        {
            _recent.Clear();
        }

        _recent[hash] = (caller, now + RecentLifetime);
        return caller;
    }

    /// <summary>Drops remembered authentications of a subscription (its keys or its state changed).</summary>
    public void Forget(Guid subscriptionId)
    {
        foreach (var (hash, recent) in _recent)
        {
            if (recent.Caller.Subscription.Id == subscriptionId)
            {
                _recent.TryRemove(hash, out _);
            }
        }
    }

    /// <summary>Keeps a key for a one-time link; returns the link's token (shown only in the link).</summary>
    public async Task<string> CreateRevealAsync(CreatedKey created, TimeSpan lifetime, CancellationToken cancellationToken)
    {
        var token = ApiKeyFormat.RandomToken();
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        db.KeyReveals.Add(new KeyReveal
        {
            Id = Guid.NewGuid(),
            TokenHash = ApiKeyFormat.Hash(token),
            ApiKeyId = created.Key.Id,
            KeyCipher = protection.CreateProtector(RevealPurpose).Protect(created.Plaintext),
            CreatedAt = now,
            ExpiresAt = now + lifetime,
        });
        await db.SaveChangesAsync(cancellationToken);
        return token;
    }

    /// <summary>Whether a one-time link would still show its key (unused, unexpired, the key live); uses nothing up.</summary>
    public async Task<bool> RevealableAsync(string token, CancellationToken cancellationToken)
    {
        var hash = ApiKeyFormat.Hash(token);
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.KeyReveals.AnyAsync(
            r => r.TokenHash == hash && r.KeyCipher != null && r.RevealedAt == null && r.ExpiresAt >= now
                && db.ApiKeys.Any(k => k.Id == r.ApiKeyId && k.RevokedAt == null),
            cancellationToken);
    }

    /// <summary>The key behind a one-time link, exactly once; null when used, expired, revoked or unknown.</summary>
    public async Task<string?> RevealAsync(string token, CancellationToken cancellationToken)
    {
        var hash = ApiKeyFormat.Hash(token);
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var reveal = await db.KeyReveals.SingleOrDefaultAsync(r => r.TokenHash == hash, cancellationToken);
        if (reveal?.KeyCipher is null || reveal.ExpiresAt < now)
        {
            return null;
        }

        // Claim the reveal with a conditional update so two simultaneous clicks cannot both see the key.
        var claimed = await db.KeyReveals.Where(r => r.Id == reveal.Id && r.RevealedAt == null)
            .ExecuteUpdateAsync(set => set.SetProperty(r => r.RevealedAt, now).SetProperty(r => r.KeyCipher, (string?)null), cancellationToken);
        if (claimed != 1 || !await db.ApiKeys.AnyAsync(k => k.Id == reveal.ApiKeyId && k.RevokedAt == null, cancellationToken))
        {
            return null;
        }

        return protection.CreateProtector(RevealPurpose).Unprotect(reveal.KeyCipher);
    }

    private bool LastUsedDue(Guid keyId, DateTimeOffset now) =>
        !_lastUsedWritten.TryGetValue(keyId, out var written) || now - written >= LastUsedResolution;

    private async Task TouchAsync(AdapterDbContext db, ApiKey key, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (!LastUsedDue(key.Id, now))
        {
            return;
        }

        _lastUsedWritten[key.Id] = now;
        await db.ApiKeys.Where(k => k.Id == key.Id).ExecuteUpdateAsync(set => set.SetProperty(k => k.LastUsedAt, now), cancellationToken);
    }

    private static string DefaultName(ApiKeyKind kind) => kind == ApiKeyKind.Secret ? "Secret key" : "Widget key";
}
