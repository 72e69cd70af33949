using CmpWaldurAdapter.Usage;

namespace CmpWaldurAdapter.Knowledge;

/// <summary>
/// The authorization seam of the knowledge-base API: each registered resolver may recognise the caller and
/// name the one subscription it acts for. Secret keys are resolved today; the buyer console's session adds
/// its own resolver (registered with <c>AddSingleton&lt;IKnowledgeCallerResolver, …&gt;</c>) without touching the endpoints.
/// </summary>
public interface IKnowledgeCallerResolver
{
    /// <summary>The subscription the caller may manage, or null when this resolver does not recognise the request.</summary>
    ValueTask<Guid?> ResolveAsync(HttpContext http, CancellationToken cancellationToken);
}

/// <summary><c>Authorization: Bearer sk_live_…</c>, through the same <see cref="ISubscriptionAuthenticator"/> as <c>/v1/usage</c>.</summary>
public sealed class SecretKeyKnowledgeCallerResolver(ISubscriptionAuthenticator authenticator) : IKnowledgeCallerResolver
{
    public async ValueTask<Guid?> ResolveAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var header = http.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        return header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)
            ? await authenticator.AuthenticateAsync(header[scheme.Length..].Trim(), cancellationToken)
            : null;
    }
}
