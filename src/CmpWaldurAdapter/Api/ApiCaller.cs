using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Api;

/// <summary>
/// Who is calling the API: resolved from <c>Authorization: Bearer sk_live_…</c> (or <c>x-api-key</c>).
/// Publishable keys, suspended and ended subscriptions are refused here, before any work.
/// </summary>
public static class ApiCaller
{
    /// <param name="recent">
    /// Accept an authentication a few seconds old (<see cref="ApiKeyService.AuthenticateRecentAsync"/>): only for
    /// endpoints whose credit hold re-checks the key and the subscription. A remembered refusal is read again.
    /// </param>
    public static async Task<(AuthenticatedKey? Caller, IResult? Refusal)> AuthenticateSecretAsync(HttpContext http, ApiKeyService keys, CancellationToken cancellationToken, bool recent = false)
    {
        var presented = Presented(http.Request);
        if (presented is null)
        {
            return (null, ApiErrors.InvalidKey());
        }

        var caller = recent ? await keys.AuthenticateRecentAsync(presented, cancellationToken) : await keys.AuthenticateAsync(presented, cancellationToken);
        if (recent && caller is not null && Refusal(caller.Subscription) is not null)
        {
            keys.Forget(caller.Subscription.Id);
            caller = await keys.AuthenticateAsync(presented, cancellationToken);
        }

        if (caller is null)
        {
            return (null, ApiErrors.InvalidKey());
        }

        if (caller.Key.Kind != ApiKeyKind.Secret)
        {
            return (null, ApiErrors.PublishableKey());
        }

        return Refusal(caller.Subscription) is { } refusal ? (null, refusal) : (caller, null);
    }

    /// <summary>Why a subscription may not be served right now, or null when it may.</summary>
    public static IResult? Refusal(Subscription subscription) => subscription switch
    {
        _ when HasEnded(subscription) => ApiErrors.InvalidKey(),
        { Paused: true } => ApiErrors.SubscriptionSuspended("This subscription is paused in Waldur (for example by a budget policy); ask the organization's owner to resume it."),
        { Downscaled: true } => ApiErrors.SubscriptionSuspended("This subscription is downscaled in Waldur; ask the organization's owner to restore it."),
        { State: SubscriptionState.Active } => null,
        _ => ApiErrors.SubscriptionSuspended("This subscription is not ready yet."),
    };

    /// <summary>
    /// Terminated or terminating: its keys open nothing any more, as if revoked (<see cref="Refusal"/> answers 401
    /// <c>invalid_api_key</c>). A paused or downscaled subscription has not ended: it may still read what it has.
    /// </summary>
    public static bool HasEnded(Subscription subscription) =>
        subscription.State is SubscriptionState.Terminated or SubscriptionState.Terminating;

    private static string? Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return header["Bearer ".Length..].Trim();
        }

        var apiKey = request.Headers["x-api-key"].ToString();
        return string.IsNullOrWhiteSpace(apiKey) ? null : apiKey.Trim();
    }
}
