using CmpWaldurAdapter.Api;

namespace CmpWaldurAdapter.Capabilities.Automations;

public static class AutomationEndpoints
{
    public static void MapAutomationEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var group = endpoints.MapGroup("/v1").WithTags("Automations");
        group.MapPost("/runs", (HttpContext http, AutomationService automations, CancellationToken cancellationToken) => automations.TriggerAsync(http, cancellationToken))
            .WithName("CreateAutomationRun")
            .WithSummary("Runs the key's automation once with the given input and answers its output; charged the offering's automation_run price on success.")
            .WithDescription("Body: {\"input\": …} (any JSON value). Header Idempotency-Key: a replay within 24 hours returns the stored run and charges nothing. "
                + "An output that is JSON is returned as JSON, any other as a string. Offerings without automations answer 404 model_not_found.")
            .DocumentsBody<AutomationRunRequest>()
            .Produces<AutomationRunView>()
            .Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(429)
            .Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);
        group.MapGet("/runs", (HttpContext http, AutomationService automations, CancellationToken cancellationToken) => automations.ListAsync(http, cancellationToken))
            .WithName("ListAutomationRuns")
            .WithSummary("The automation's runs (API and scheduled), newest first, with status, input, output and credits; paged with limit and after.")
            .WithDescription("A page of at most limit runs (default and maximum 100). When has_more is true, pass its last_id as after for the next, older page.")
            .DocumentsListQuery()
            .Produces<AutomationRunList>().Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(429).Produces<ApiErrorBody>(503);
    }
}
