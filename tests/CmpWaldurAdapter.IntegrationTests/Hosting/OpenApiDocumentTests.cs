using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

/// <summary>
/// <c>openapi/cmp-adapter.json</c> describes the API the running adapter serves. Regenerate it with
/// <c>scripts/generate-openapi.sh</c> (this test with CMP_UPDATE_OPENAPI=1).
/// </summary>
public sealed class OpenApiDocumentTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task The_committed_api_description_matches_the_endpoints()
    {
        var served = await ServedDocumentAsync();
        var path = UpstreamSpecs.PathOf("openapi/cmp-adapter.json");
        var rendered = served.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";

        if (Environment.GetEnvironmentVariable("CMP_UPDATE_OPENAPI") == "1")
        {
            await File.WriteAllTextAsync(path, rendered);
        }

        Assert.True(File.Exists(path), "openapi/cmp-adapter.json is missing: run scripts/generate-openapi.sh");
        var committed = JsonNode.Parse(await File.ReadAllTextAsync(path));
        Assert.True(JsonNode.DeepEquals(committed, served), "openapi/cmp-adapter.json is stale: run scripts/generate-openapi.sh and commit the result");
        Assert.Contains("/v1/keys", served["paths"]!.AsObject().Select(p => p.Key));
    }

    [Fact]
    public async Task A_completion_is_described_both_as_json_and_as_a_stream_of_chunks()
    {
        var served = await ServedDocumentAsync();

        // SDK generators read the answer's type from here: a streamed body must not replace the plain one.
        var answer = served["paths"]!["/v1/chat/completions"]!["post"]!["responses"]!["200"]!["content"]!;
        Assert.EndsWith("/ChatCompletion", answer["application/json"]!["schema"]!["$ref"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.NotNull(answer["text/event-stream"]!["schema"]!["properties"]!["choices"]!["items"]!["properties"]!["delta"]);
        var model = served["paths"]!["/v1/models/{model}"]!["get"]!["responses"]!;
        Assert.EndsWith("/ModelCard", model["200"]!["content"]!["application/json"]!["schema"]!["$ref"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.NotNull(model["404"]);
    }

    [Fact]
    public async Task Numbers_are_described_as_numbers_for_client_generators()
    {
        var served = await ServedDocumentAsync();

        var usage = served["components"]!["schemas"]!["ChatUsage"]!["properties"]!;
        Assert.Equal("integer", usage["prompt_tokens"]!["type"]!.GetValue<string>());
        Assert.Equal("integer", usage["credits_charged"]!["type"]!.GetValue<string>());
        var types = served.ToJsonString();
        Assert.DoesNotContain("\"integer\",\"string\"", types, StringComparison.Ordinal);
        Assert.DoesNotContain("\"number\",\"string\"", types, StringComparison.Ordinal);
    }

    /// <summary>The API document the running adapter serves.</summary>
    private async Task<JsonNode> ServedDocumentAsync()
    {
        var server = await _bed.StartServerAsync();
        using var client = server.CreateClient();
        return JsonNode.Parse(await client.GetStringAsync("/openapi/v1.json"))!;
    }
}
