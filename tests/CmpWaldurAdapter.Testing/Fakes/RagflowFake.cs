using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>A retrieval the fake received: which datasets were searched, with which key, for what question.</summary>
public sealed record RagflowRetrieval(IReadOnlyList<string> DatasetIds, string? Authorization, string? Question);

/// <summary>
/// The RAGFlow emulator served through WireMock: every request is checked against <c>openapi/ragflow.yaml</c>,
/// and parsing runs as the task executor would, in the background: documents stay RUNNING until the test
/// advances, finishes or fails them.
/// </summary>
public sealed class RagflowFake : RagflowEmulator, IFakeUpstream, IDisposable
{
    public RagflowFake()
    {
        ParseAtOnce = false;
        Upstream = new FakeUpstream(this);
        Url = Upstream.Url;
    }

    public FakeUpstream Upstream { get; }

    public IReadOnlyList<RagflowRetrieval> Retrievals => Upstream.Requests
        .Where(r => r.Method == "POST" && r.Path == "/api/v1/retrieval")
        .Select(r =>
        {
            var body = string.IsNullOrEmpty(r.Body) ? [] : JsonNode.Parse(r.Body) as JsonObject ?? [];
            var ids = (body["dataset_ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            var authorization = r.Headers is { } h && h.TryGetValue("Authorization", out var values) ? values.FirstOrDefault() : null;
            return new RagflowRetrieval(ids, authorization, body["question"]?.GetValue<string>());
        })
        .ToList();

    /// <summary>Fails the test if any request the adapter sent is not allowed by <c>openapi/ragflow.yaml</c>, or was an unscoped delete.</summary>
    public void AssertRequestsConformToSpec()
    {
        Upstream.Server.AssertRequestsConform(UpstreamSpecs.Ragflow.WithAuthEnforced());
        if (UnscopedDeletes > 0)
        {
            throw new Xunit.Sdk.XunitException($"{UnscopedDeletes} RAGFlow DELETE(s) named no ids or asked for delete_all.");
        }
    }

    public void Dispose() => Upstream.Dispose();
}
