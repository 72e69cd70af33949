using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>A run the fake received, as the isolation tests check it.</summary>
public sealed record LangflowRun(Guid FlowId, string? ApiKey, Guid? KeyOwner, string? SessionId, string? Input, JsonObject Tweaks, bool Streamed);

/// <summary>
/// The Langflow emulator served through WireMock: every request is checked against <c>openapi/langflow.json</c>,
/// every secret it mints is watched for in the logs, and runs answer what the test scripted (by default the echo
/// of their input, streamed word by word).
/// </summary>
public sealed class LangflowFake : LangflowEmulator, IFakeUpstream, IDisposable
{
    private readonly Queue<LangflowStreamScript> _scripts = new();
    private readonly Queue<string> _answers = new();

    public LangflowFake()
    {
        Upstream = new FakeUpstream(this);
        Url = Upstream.Url;
    }

    public FakeUpstream Upstream { get; }

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

    /// <summary>Drops scripted answers no run took (a request refused before its run leaves its answer queued).</summary>
    public void ForgetScriptedAnswers()
    {
        lock (Sync)
        {
            _answers.Clear();
        }
    }

    /// <summary>The next streamed run sends these tokens and ends this way (FIFO; unscripted runs stream the answer word by word).</summary>
    public void ScriptNextStream(IReadOnlyList<string> tokens, LangflowStreamEnding ending = LangflowStreamEnding.End)
    {
        lock (Sync)
        {
            _scripts.Enqueue(new LangflowStreamScript(tokens, ending));
        }
    }

    /// <summary>Every run received (plain and streamed), with the key and its owner, the session and the tweaks.</summary>
    public IReadOnlyList<LangflowRun> Runs => Upstream.Requests
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

    /// <summary>Fails the test if any request the adapter sent is not allowed by the trimmed Langflow spec, or used the query-string key.</summary>
    public void AssertRequestsConformToSpec()
    {
        Upstream.Server.AssertRequestsConform(UpstreamSpecs.Langflow.WithAuthEnforced());
        if (QueryKeyUses > 0)
        {
            throw new Xunit.Sdk.XunitException($"{QueryKeyUses} Langflow request(s) carried the API key in the query string.");
        }
    }

    protected override string RunAnswer(JsonObject flow, JsonObject? tweaks, string input) =>
        _answers.Count > 0 ? _answers.Dequeue() : $"echo: {input}";

    protected override LangflowStreamScript StreamOf(string text) => _scripts.Count > 0 ? _scripts.Dequeue() : base.StreamOf(text);

    protected override string Secret(string value, string description) => Hosting.TestSecrets.Register(value, description);

    public void Dispose() => Upstream.Dispose();
}
