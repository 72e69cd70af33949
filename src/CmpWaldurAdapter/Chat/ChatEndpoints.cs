namespace CmpWaldurAdapter.Chat;

/// <summary>The OpenAI-compatible endpoints: chat completions and the model list.</summary>
public static class ChatEndpoints
{
    public static void MapChatEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var chat = endpoints.MapGroup("/v1").WithTags("Chat");
        chat.MapPost("/chat/completions", (HttpContext http, ChatService chat, CancellationToken cancellationToken) => chat.CompleteAsync(http, cancellationToken))
            .WithName("CreateChatCompletion")
            .WithSummary("Ask the key's agent; OpenAI request and response shapes, optionally streamed as server-sent events.");
        chat.MapGet("/models", (HttpContext http, ChatService chat, CancellationToken cancellationToken) => chat.ListModelsAsync(http, cancellationToken))
            .WithName("ListModels")
            .WithSummary("The agent this key can talk to.");
    }
}
