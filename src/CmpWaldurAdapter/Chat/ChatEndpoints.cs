using System.Diagnostics;
using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Observability;

namespace CmpWaldurAdapter.Chat;

/// <summary>The OpenAI-compatible endpoints: chat completions and the model list.</summary>
public static class ChatEndpoints
{
    public static void MapChatEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var chat = endpoints.MapGroup("/v1").WithTags("Chat");
        chat.MapPost("/chat/completions", (HttpContext http, ChatService chat, CancellationToken cancellationToken) => chat.CompleteAsync(http, cancellationToken))
            .WithName("CreateChatCompletion")
            .WithSummary("Ask the key's agent; OpenAI request and response shapes, optionally streamed as server-sent events.")
            .WithDescription("Body: OpenAI's chat completion request (model, messages, stream, stream_options.include_usage, user, max_tokens or max_completion_tokens, temperature, stop; other fields are ignored, except that n above 1, logprobs, a response_format other than text and a tool_choice other than none or auto are refused with 400, as the agent cannot honour them) or {\"message\": \"…\"}. "
                + "The answer ends before the first stop sequence (finish_reason stop) or at max_tokens, counted as four characters a token (finish_reason length). "
                + "Headers: X-Conversation-Id (the conversation; also taken from user, else a new id, returned in the same header) and Idempotency-Key (a replay within 24 hours returns the stored answer and charges nothing; "
                + "after a 500 that says the message was charged, a retry with the key gets the answer and costs nothing more). "
                + "With stream=true the answer is text/event-stream: chat.completion.chunk events, an optional usage chunk, then data: [DONE]; an agent failure mid-stream sends an error event, then aborts the connection without [DONE], and charges nothing.")
            .DocumentsBody<ChatCompletionRequest>()
            .Produces<ChatCompletion>(contentType: "application/json")
            .AlsoProduces<ChatCompletionChunk>(StatusCodes.Status200OK, "text/event-stream")
            .Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(409).Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(422).Produces<ApiErrorBody>(429)
            .Produces<ApiErrorBody>(500).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503)
            .AddEndpointFilter(ObserveRequest);
        chat.MapGet("/models", (HttpContext http, ChatService chat, CancellationToken cancellationToken) => chat.ListModelsAsync(http, cancellationToken))
            .WithName("ListModels")
            .WithSummary("The agent this key can talk to.")
            .Produces<ModelList>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403);
        chat.MapGet("/models/{model}", (HttpContext http, string model, ChatService chat, CancellationToken cancellationToken) => chat.RetrieveModelAsync(http, model, cancellationToken))
            .WithName("RetrieveModel")
            .WithSummary("The key's agent by its id (OpenAI's models.retrieve); any other id is 404 model_not_found.")
            .Produces<ModelCard>().Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404);
    }

    // Counted when the response completes, so a streamed answer's latency covers the whole stream.
    private static async ValueTask<object?> ObserveRequest(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        var started = Stopwatch.GetTimestamp();
        var metrics = http.RequestServices.GetRequiredService<AdapterMetrics>();
        http.Response.OnCompleted(() =>
        {
            metrics.ObserveChatRequest(http.Response.StatusCode, Stopwatch.GetElapsedTime(started));
            return Task.CompletedTask;
        });
        return await next(context);
    }
}
