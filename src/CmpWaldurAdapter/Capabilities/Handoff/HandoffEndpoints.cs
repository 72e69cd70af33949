using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.ApiKeys;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>The handoff settings and the escalated conversations of the key's subscription (what the console shows).</summary>
public static class HandoffEndpoints
{
    public static void MapHandoffEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var group = endpoints.MapGroup("/v1/handoff").WithTags("Handoff");
        group.MapGet("/webhook", async (HttpContext http, ApiKeyService keys, HandoffService handoff, CancellationToken cancellationToken) =>
            {
                var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
                if (refusal is not null)
                {
                    return refusal;
                }

                return await handoff.WebhookAsync(caller!.Subscription.Id, cancellationToken) is { } settings
                    ? Results.Json(settings, ApiJson.Options)
                    : ApiErrors.NotFound("No handoff webhook is set; set one with PUT /v1/handoff/webhook.", "webhook_not_found");
            })
            .WithName("GetHandoffWebhook").WithSummary("The escalation webhook's address (never its secret).")
            .Produces<WebhookSettings>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404);
        group.MapPut("/webhook", async (HttpContext http, ApiKeyService keys, HandoffService handoff, WebhookAddresses addresses, CancellationToken cancellationToken) =>
            {
                var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
                if (refusal is not null)
                {
                    return refusal;
                }

                var (body, error) = await ApiRequests.ReadJsonAsync<WebhookRequest>(http);
                if (error is not null)
                {
                    return error;
                }

                var (url, refused) = await addresses.CheckAsync(body!.Url, cancellationToken);
                if (url is null)
                {
                    return ApiErrors.InvalidRequest(refused!, "url", "invalid_url");
                }

                return Results.Json(await handoff.SetWebhookAsync(caller!.Subscription.Id, url, cancellationToken), ApiJson.Options);
            })
            .WithName("SetHandoffWebhook")
            .WithSummary("Sets where escalations are sent. The first time, the answer carries the signing secret: it is shown only once.")
            .DocumentsBody<WebhookRequest>()
            .Produces<WebhookSettings>().Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415);
        group.MapPost("/webhook/secret", async (HttpContext http, ApiKeyService keys, HandoffService handoff, CancellationToken cancellationToken) =>
            {
                var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
                if (refusal is not null)
                {
                    return refusal;
                }

                return await handoff.RotateSecretAsync(caller!.Subscription.Id, cancellationToken) is { } settings
                    ? Results.Json(settings, ApiJson.Options)
                    : ApiErrors.NotFound("No handoff webhook is set; set one with PUT /v1/handoff/webhook.", "webhook_not_found");
            })
            .WithName("RotateHandoffWebhookSecret").WithSummary("A new signing secret, shown only in this answer; the old one stops working at once.")
            .Produces<WebhookSettings>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404);
        group.MapGet("/escalations", async (HttpContext http, ApiKeyService keys, HandoffService handoff, CancellationToken cancellationToken) =>
            {
                var (caller, refusal) = await ApiCaller.AuthenticateSecretAsync(http, keys, cancellationToken);
                if (refusal is not null)
                {
                    return refusal;
                }

                var (query, invalid) = ListQuery.Read(http.Request, HandoffService.EscalationIdPrefix);
                if (invalid is not null)
                {
                    return invalid;
                }

                return await handoff.EscalatedAsync(caller!.Subscription.Id, query!.Limit, query.After, cancellationToken) is { } page
                    ? Results.Json(EscalatedConversationList.Of(page), ApiJson.Options)
                    : ListQuery.InvalidCursor();
            })
            .WithName("ListEscalations")
            .WithSummary("The subscription's conversations handed to a person, newest first, with their transcripts; paged with limit and after.")
            .WithDescription("A page of at most limit conversations (default and maximum 100). When has_more is true, pass its last_id as after for the next, older page.")
            .DocumentsListQuery()
            .Produces<EscalatedConversationList>().Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403);
    }
}
