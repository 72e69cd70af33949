using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.ApiKeys;

/// <summary>
/// Issues a subscription's first secret key when it is created (revealed through a one-time link in the
/// Waldur report, never the key itself) and revokes every key when the subscription ends.
/// </summary>
public sealed class ApiKeyProvisioner(ApiKeyService keys, IOptions<WebOptions> web) : ITenantProvisioner
{
    public const string FirstKeyName = "First key";

    /// <summary>How long the one-time link works.</summary>
    public static readonly TimeSpan RevealLifetime = TimeSpan.FromDays(7);

    public IReadOnlyList<ProvisioningStep> StepsFor(OrderType type) => type switch
    {
        OrderType.Create or OrderType.Restore => [new ProvisioningStep("issue-first-key", IssueFirstKeyAsync)],
        OrderType.Terminate => [new ProvisioningStep("revoke-adapter-keys", RevokeAsync)],
        OrderType.Update => [],
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown order type."),
    };

    private async Task IssueFirstKeyAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        // A first key left by an interrupted run has a lost reveal link: replace it rather than keep twins.
        var earlier = await context.Db.ApiKeys
            .Where(k => k.SubscriptionId == context.Subscription.Id && k.Name == FirstKeyName && k.RevokedAt == null)
            .Select(k => k.Id)
            .ToListAsync(cancellationToken);
        foreach (var id in earlier)
        {
            await keys.RevokeAsync(context.Subscription.Id, id, cancellationToken);
        }

        var created = await keys.CreateAsync(context.Subscription.Id, ApiKeyKind.Secret, FirstKeyName, cancellationToken);
        var token = await keys.CreateRevealAsync(created, RevealLifetime, cancellationToken);
        var link = new Uri(web.Value.PublicBaseUrl, $"keys/reveal/{token}");
        context.Note($"Your first API key ({created.Key.Prefix}…) can be seen once at {link} (the link works once, for {RevealLifetime.TotalDays:0} days).");
    }

    private async Task RevokeAsync(ProvisioningContext context, CancellationToken cancellationToken)
    {
        var revoked = await keys.RevokeAllAsync(context.Subscription.Id, cancellationToken);
        context.Note(revoked == 1 ? "1 API key was revoked." : $"{revoked} API keys were revoked.");
    }
}
