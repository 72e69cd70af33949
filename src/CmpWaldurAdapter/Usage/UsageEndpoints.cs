using System.Text.Json.Serialization;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// <c>GET /v1/usage[?period=YYYY-MM]</c> with a subscription's secret key: its credits this month (or in
/// <c>period</c>) by component, their total, and the organization's available balance, as the console
/// and the Run page show them. Works while the subscription is paused: seeing usage is not being served.
/// A Waldur customer credit limited to other offerings does not cover the subscription's agent: the balance is then 0,
/// what its paid actions may spend (they are refused), not the credits only other agents may spend.
/// </summary>
public static class UsageEndpoints
{
    public static void MapUsageEndpoints(this IEndpointRouteBuilder endpoints) =>
        endpoints.MapGet("/v1/usage", GetUsageAsync)
            .WithTags("Usage").WithName("GetUsage")
            .WithSummary("This month's credits of the key's subscription by component, and the organization's available balance.")
            .Produces<UsageResponse>().Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(404);

    private static async Task<IResult> GetUsageAsync(
        HttpContext http,
        [Microsoft.AspNetCore.Mvc.FromQuery(Name = "period")] string? period,
        ISubscriptionAuthenticator authenticator,
        IDbContextFactory<AdapterDbContext> dbs,
        PriceBooks priceBooks,
        CreditLedger ledger,
        TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var header = http.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)
            || await authenticator.AuthenticateAsync(header[scheme.Length..].Trim(), cancellationToken) is not { } subscriptionId)
        {
            // Never echoes the presented key (LiteLLM #18731).
            return ApiErrors.InvalidKey();
        }

        var month = BillingPeriod.Of(clock.GetUtcNow());
        if (period is not null && !BillingPeriod.TryParse(period, out month))
        {
            return ApiErrors.InvalidRequest("period must be a month as YYYY-MM.", "period", "invalid_period");
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.Id == subscriptionId)
            .Select(s => new { s.Id, s.CustomerId, s.OfferingUuid })
            .FirstOrDefaultAsync(cancellationToken);
        if (subscription is null)
        {
            return ApiErrors.NotFound("The subscription does not exist.", "subscription_not_found");
        }

        var used = await UsageTotals.ForSubscriptionAsync(db, subscription.Id, month, cancellationToken);
        var components = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var component in SafeComponents(priceBooks, subscription.OfferingUuid))
        {
            components[component] = 0;
        }

        foreach (var (component, credits) in used)
        {
            components[component] = credits;
        }

        var balance = await ledger.BalanceAsync(subscription.CustomerId, cancellationToken);
        var covered = balance.Covers(subscription.OfferingUuid);
        return Results.Json(new UsageResponse(subscription.Id, month.ToString(), components, components.Values.Sum(), covered ? balance.Available : 0, covered), ApiJson.Options);
    }

    private static IReadOnlyList<string> SafeComponents(PriceBooks priceBooks, Guid offeringUuid)
    {
        try
        {
            return priceBooks.ComponentsOf(offeringUuid);
        }
        catch (Catalogue.CatalogueException)
        {
            // Without the catalogue the components charged so far are still shown.
            return [];
        }
    }

    /// <summary>A subscription's usage in one month, in credits.</summary>
    /// <param name="Balance">The organization's available credits this subscription may spend: 0 when <paramref name="CreditCoversAgent"/> is false.</param>
    /// <param name="CreditCoversAgent">
    /// False when the organization's Waldur customer credit is limited to other offerings (this agent's paid actions are
    /// refused with a 402); true when it covers this one, is not limited, or the ledger funds the balance.
    /// </param>
    public sealed record UsageResponse(
        [property: JsonPropertyName("subscription")] Guid Subscription,
        [property: JsonPropertyName("period")] string Period,
        [property: JsonPropertyName("components")] IReadOnlyDictionary<string, long> Components,
        [property: JsonPropertyName("total")] long Total,
        [property: JsonPropertyName("balance")] long Balance,
        [property: JsonPropertyName("credit_covers_agent")] bool CreditCoversAgent);
}
