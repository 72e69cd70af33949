using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>How a scripted streamed run ends.</summary>
public enum LangflowStreamEnding
{
    /// <summary>An <c>end</c> event with the whole result, as a finished run.</summary>
    End,

    /// <summary>An <c>error</c> event, then the stream closes.</summary>
    Error,

    /// <summary>The stream closes without <c>end</c> (a worker died).</summary>
    Close,
}

/// <summary>A run the fake received, as the isolation tests check it.</summary>
public sealed record LangflowRun(Guid FlowId, string? ApiKey, Guid? KeyOwner, string? SessionId, string? Input, JsonObject Tweaks, bool Streamed);

/// <summary>
/// Runs as Langflow 1.4.2 streams them (<c>?stream=true</c>): each event one JSON object and a blank line,
/// no SSE framing; <c>add_message</c> for the user's echo and the empty AI message, <c>token</c>s, then
/// <c>end</c> with the same result as a plain run.
/// </summary>
public sealed partial class LangflowFake
{
    private readonly Queue<(IReadOnlyList<string> Tokens, LangflowStreamEnding Ending)> _scripts = new();

    private readonly Queue<string> _answers = new();

    /// <summary>The next runs answer these texts, one each (FIFO; unscripted runs answer the echo of their input).</summary>
    public void ScriptNextAnswers(params string[] answers)
    {
        lock (Sync)
        {
            foreach (var answer in answers)
            {
                _answers.Enqueue(answer);
            }
        }
    }

    /// <summary>The next streamed run sends these tokens and ends this way (FIFO; unscripted runs stream the echo word by word).</summary>
    public void ScriptNextStream(IReadOnlyList<string> tokens, LangflowStreamEnding ending = LangflowStreamEnding.End)
    {
        lock (Sync)
        {
            _scripts.Enqueue((tokens, ending));
        }
    }

    /// <summary>Every run received (plain and streamed), with the key and its owner, the session and the tweaks.</summary>
    public IReadOnlyList<LangflowRun> Runs => Requests
        .Where(r => r.Method == "POST" && r.Path.StartsWith("/api/v1/run/", StringComparison.Ordinal))
        .Select(r =>
        {
            var body = string.IsNullOrEmpty(r.Body) ? [] : JsonNode.Parse(r.Body) as JsonObject ?? [];
            var key = r.Headers is { } h && h.TryGetValue("x-api-key", out var values) ? values.FirstOrDefault() : null;
            var streamed = r.Query is { } q && q.TryGetValue("stream", out var stream) && stream.FirstOrDefault() == "true";
            return new LangflowRun(
                Guid.Parse(r.Path["/api/v1/run/".Length..]),
                key,
                key is null ? null : KeyOwner(key),
                body["session_id"]?.GetValue<string>(),
                body["input_value"]?.GetValue<string>(),
                body["tweaks"] as JsonObject ?? [],
                streamed);
        })
        .ToList();

    private FakeResponse StreamedRun(Guid flowId, string session, string input, string text)
    {
        var (tokens, ending) = _scripts.Count > 0
            ? _scripts.Dequeue()
            : (text.Split(' ').Select((word, i) => i == 0 ? word : " " + word).ToList(), LangflowStreamEnding.End);
        var messageId = Guid.NewGuid().ToString();
        var now = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        var body = new StringBuilder();
        void Event(string name, JsonNode data) => body.Append(new JsonObject { ["event"] = name, ["data"] = data }.ToJsonString()).Append("\n\n");

        Event("add_message", Message(Guid.NewGuid().ToString(), "User", input, session, flowId, now));
        Event("add_message", Message(messageId, "Machine", string.Empty, session, flowId, now));
        foreach (var token in tokens)
        {
            Event("token", new JsonObject { ["chunk"] = token, ["id"] = messageId, ["timestamp"] = now });
        }

        switch (ending)
        {
            case LangflowStreamEnding.End:
                var answer = string.Concat(tokens);
                Event("end", new JsonObject
                {
                    ["result"] = new JsonObject
                    {
                        ["session_id"] = session,
                        ["outputs"] = new JsonArray(new JsonObject
                        {
                            ["inputs"] = new JsonObject { ["input_value"] = input },
                            ["outputs"] = new JsonArray(new JsonObject
                            {
                                ["results"] = new JsonObject { ["message"] = new JsonObject { ["text"] = answer, ["sender"] = "Machine", ["session_id"] = session } },
                                ["component_id"] = "ChatOutput-cmp01",
                            }),
                        }),
                    },
                });
                break;
            case LangflowStreamEnding.Error:
                Event("error", new JsonObject { ["error"] = "Error running graph: the model provider refused the request" });
                break;
        }

        return new FakeResponse(200, body.ToString(), "text/event-stream");
    }

    private static JsonObject Message(string id, string sender, string text, string session, Guid flowId, string timestamp) => new()
    {
        ["timestamp"] = timestamp,
        ["sender"] = sender,
        ["sender_name"] = sender == "User" ? "User" : "AI",
        ["session_id"] = session,
        ["text"] = text,
        ["files"] = new JsonArray(),
        ["error"] = false,
        ["edit"] = false,
        ["properties"] = new JsonObject(),
        ["category"] = "message",
        ["content_blocks"] = new JsonArray(),
        ["id"] = id,
        ["flow_id"] = flowId.ToString(),
    };
}
