using System.Text.Json.Serialization;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Usage;

/// <summary>
/// <c>GET /v1/usage[?period=YYYY-MM]</c> with <c>Authorization: Bearer &lt;token&gt;</c>: the subscription's
/// credits this month (or in <c>period</c>) by component, their total, and the organization's available
/// balance, as the console and the Run page show them. Errors use the OpenAI shape.
/// </summary>
public static class UsageEndpoints
{
    public static void MapUsageEndpoints(this IEndpointRouteBuilder endpoints) => endpoints.MapGet("/v1/usage", GetUsageAsync);

    private static async Task<IResult> GetUsageAsync(
        HttpContext http,
        ISubscriptionAuthenticator authenticator,
        IDbContextFactory<AdapterDbContext> dbs,
        PriceBooks priceBooks,
        CreditLedger ledger,
        TimeProvider clock,
        CancellationToken cancellationToken)
    {
        var header = http.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) || header.Length == scheme.Length)
        {
            return Error(StatusCodes.Status401Unauthorized, "Send your API key as 'Authorization: Bearer <key>'.", "invalid_request_error", "missing_api_key", http);
        }

        if (await authenticator.AuthenticateAsync(header[scheme.Length..].Trim(), cancellationToken) is not { } subscriptionId)
        {
            // Never echo the presented key back (LiteLLM #18731).
            return Error(StatusCodes.Status401Unauthorized, "The API key is not valid.", "invalid_request_error", "invalid_api_key", http);
        }

        var period = BillingPeriod.Of(clock.GetUtcNow());
        if (http.Request.Query.TryGetValue("period", out var requested) && !BillingPeriod.TryParse(requested.ToString(), out period))
        {
            return Error(StatusCodes.Status400BadRequest, "period must be a month as YYYY-MM.", "invalid_request_error", "invalid_period", http, "period");
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking()
            .Where(s => s.Id == subscriptionId)
            .Select(s => new { s.Id, s.CustomerId, s.OfferingUuid })
            .FirstOrDefaultAsync(cancellationToken);
        if (subscription is null)
        {
            return Error(StatusCodes.Status404NotFound, "The subscription does not exist.", "invalid_request_error", "subscription_not_found", http);
        }

        var used = await UsageTotals.ForSubscriptionAsync(db, subscription.Id, period, cancellationToken);
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
        return Results.Json(new UsageResponse(subscription.Id, period.ToString(), components, components.Values.Sum(), balance.Available));
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

    private static IResult Error(int status, string message, string type, string code, HttpContext http, string? param = null)
    {
        if (status == StatusCodes.Status401Unauthorized)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
        }

        return Results.Json(new ErrorResponse(new ErrorBody(message, type, code, param)), statusCode: status);
    }

    private sealed record UsageResponse(
        [property: JsonPropertyName("subscription")] Guid Subscription,
        [property: JsonPropertyName("period")] string Period,
        [property: JsonPropertyName("components")] IReadOnlyDictionary<string, long> Components,
        [property: JsonPropertyName("total")] long Total,
        [property: JsonPropertyName("balance")] long Balance);

    private sealed record ErrorResponse([property: JsonPropertyName("error")] ErrorBody Error);

    private sealed record ErrorBody(
        [property: JsonPropertyName("message")] string Message,
        [property: JsonPropertyName("type")] string Type,
        [property: JsonPropertyName("code")] string Code,
        [property: JsonPropertyName("param")] string? Param);
}
