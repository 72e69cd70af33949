using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.ApiKeys;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// Turns a bearer token into the subscription it may act for: the seam <c>GET /v1/usage</c> depends on,
/// so the endpoint does not care how keys are stored. Backed by <see cref="ApiKeySubscriptionAuthenticator"/>.
/// </summary>
public interface ISubscriptionAuthenticator
{
    /// <summary>The subscription id the token belongs to, or null when the token is unknown, revoked, not a secret key, or its subscription ended.</summary>
    ValueTask<Guid?> AuthenticateAsync(string token, CancellationToken cancellationToken);
}

/// <summary>
/// Subscription secret keys (<c>sk_live_…</c>, hashed at rest); publishable widget keys do not open the usage API. The key of
/// an ended subscription (<see cref="ApiCaller.HasEnded"/>) is refused as the chat API refuses it, even before its
/// teardown revokes it (or when Waldur erased the resource and nothing ever will); a paused or downscaled one still reads.
/// </summary>
public sealed class ApiKeySubscriptionAuthenticator(ApiKeyService keys) : ISubscriptionAuthenticator
{
    public async ValueTask<Guid?> AuthenticateAsync(string token, CancellationToken cancellationToken) =>
        await keys.AuthenticateAsync(token, cancellationToken) is { Key.Kind: ApiKeyKind.Secret } caller && !ApiCaller.HasEnded(caller.Subscription)
            ? caller.Subscription.Id
            : null;
}
