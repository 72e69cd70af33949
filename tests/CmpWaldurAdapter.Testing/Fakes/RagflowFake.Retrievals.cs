using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>A retrieval the fake received: which datasets were searched, with which key, for what question.</summary>
public sealed record RagflowRetrieval(IReadOnlyList<string> DatasetIds, string? Authorization, string? Question);

public sealed partial class RagflowFake
{
    public IReadOnlyList<RagflowRetrieval> Retrievals => Requests
        .Where(r => r.Method == "POST" && r.Path == "/api/v1/retrieval")
        .Select(r =>
        {
            var body = string.IsNullOrEmpty(r.Body) ? [] : JsonNode.Parse(r.Body) as JsonObject ?? [];
            var ids = (body["dataset_ids"] as JsonArray)?.Select(i => i!.GetValue<string>()).ToList() ?? [];
            var authorization = r.Headers is { } h && h.TryGetValue("Authorization", out var values) ? values.FirstOrDefault() : null;
            return new RagflowRetrieval(ids, authorization, body["question"]?.GetValue<string>());
        })
        .ToList();
}
