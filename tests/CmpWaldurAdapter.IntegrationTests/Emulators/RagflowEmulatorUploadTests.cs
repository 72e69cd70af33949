using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;

namespace CmpWaldurAdapter.IntegrationTests.Emulators;

/// <summary>
/// The RAGFlow emulator on Kestrel takes uploads larger than Kestrel's default body limit and keeps only the start of
/// a large file (the upload benchmark sends many), while the document's size is what was sent and a small file is kept whole.
/// </summary>
public sealed class RagflowEmulatorUploadTests : IAsyncLifetime
{
    private readonly RagflowEmulator _ragflow = new();

    public Task InitializeAsync() => _ragflow.StartAsync();

    public Task DisposeAsync() => _ragflow.DisposeAsync().AsTask();

    [Fact]
    public async Task A_large_upload_is_accepted_with_its_sent_size_and_kept_short()
    {
        var dataset = _ragflow.AddDataset("uploads");
        var large = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("Refunds are paid within five days.\n\n", 1_000_000))); // ~36 MB: over Kestrel's 30 MB default
        var small = "Parcels arrive within three days.\n\nReturns are free."u8.ToArray();

        var answer = await UploadAsync(dataset, ("large.txt", large), ("small.txt", small));

        var documents = answer["data"]!.AsArray();
        Assert.Equal(large.Length, documents[0]!["size"]!.GetValue<long>());
        Assert.Equal(small.Length, documents[1]!["size"]!.GetValue<long>());
        var exchange = Assert.Single(_ragflow.Exchanges, e => e.Request.Method == "POST");
        Assert.InRange(exchange.Request.BodyAsBytes!.Length, Emulator.KeptFileBytes, Emulator.KeptFileBytes + 4096);
        Assert.Contains("Returns are free.", exchange.Request.Body, StringComparison.Ordinal);
    }

    private async Task<JsonObject> UploadAsync(string dataset, params (string Name, byte[] Content)[] files)
    {
        using var http = new HttpClient { BaseAddress = _ragflow.Url };
        using var form = new MultipartFormDataContent();
        foreach (var (name, content) in files)
        {
            var part = new ByteArrayContent(content);
            part.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
            form.Add(part, "file", name);
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, $"api/v1/datasets/{dataset}/documents") { Content = form };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", RagflowEmulator.ApiKey);
        using var response = await http.SendAsync(request);
        var answer = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        Assert.Equal(0, answer["code"]!.GetValue<int>());
        return answer;
    }
}
