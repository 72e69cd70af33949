using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// Answers name the knowledge-base documents they drew on when the subscription's settings ask for
/// citations, and the chat endpoint's requests are counted in /metrics by status.
/// </summary>
public sealed class ChatCitationTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task With_citations_on_the_answer_names_its_source_documents_plain_and_streamed()
    {
        var me = await SubscriberWithDocumentAsync(citations: true);
        using var http = _bed.Http(me.Key);

        var plain = JsonNode.Parse(await PostOkAsync(http, """{"messages": [{"role": "user", "content": "How do refunds work?"}]}"""))!;

        Assert.EndsWith("\n\nSources: refunds.md", plain["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal("refunds.md", Assert.Single(plain["citations"]!.AsArray())!.GetValue<string>());

        _bed.Tenants.Langflow.ScriptNextStream(["Within ", "30 days."]);
        var stream = await PostOkAsync(http, """{"stream": true, "messages": [{"role": "user", "content": "How do refunds work?"}]}""");
        var text = string.Concat(stream.Split('\n')
            .Where(line => line.StartsWith("data: {", StringComparison.Ordinal))
            .Select(line => JsonNode.Parse(line["data: ".Length..])!["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>()));
        Assert.Equal("Within 30 days.\n\nSources: refunds.md", text);
    }

    [Fact]
    public async Task With_citations_off_the_answer_is_the_agents_alone()
    {
        var me = await SubscriberWithDocumentAsync(citations: false);
        using var http = _bed.Http(me.Key);

        var plain = JsonNode.Parse(await PostOkAsync(http, """{"message": "How do refunds work?"}"""))!;

        Assert.Equal("echo: How do refunds work?", plain["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Null(plain["citations"]);
        // The document was still retrieved and handed to the flow: only the naming is switched off.
        Assert.Contains("refunds.md", _bed.Tenants.Langflow.Runs[^1].Tweaks["Prompt-cmp01"]!["context"]!.GetValue<string>());
    }

    [Fact]
    public async Task Chat_requests_are_counted_in_metrics_by_status()
    {
        var paying = await _bed.SubscribeAsync(credits: 10);
        var broke = await _bed.SubscribeAsync(credits: 0);
        using (var http = _bed.Http(paying.Key))
        {
            await PostOkAsync(http, """{"message": "hello"}""");
        }

        using (var http = _bed.Http(broke.Key))
        {
            using var refused = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message": "hello"}"""));
            Assert.Equal(HttpStatusCode.PaymentRequired, refused.StatusCode);
        }

        using var anonymous = _bed.Http(null);
        await Eventually.TrueAsync(async () =>
        {
            var metrics = await anonymous.GetStringAsync("/metrics");
            return metrics.Contains("cmp_chat_requests_total{status=\"200\"} 1", StringComparison.Ordinal)
                && metrics.Contains("cmp_chat_requests_total{status=\"402\"} 1", StringComparison.Ordinal)
                && metrics.Contains("cmp_chat_request_duration_seconds_count{status=\"200\"} 1", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10));
    }

    private async Task<Subscriber> SubscriberWithDocumentAsync(bool citations)
    {
        var attributes = Tenants.TenantTestBed.Attributes();
        attributes["citations"] = citations;
        var me = await _bed.SubscribeAsync(credits: 100, attributes);
        using var http = _bed.Http(me.Key);
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes("Refunds are paid within 30 days."));
        file.Headers.ContentType = new MediaTypeHeaderValue("text/markdown");
        form.Add(file, "file", "refunds.md");
        using var upload = await http.PostAsync("/v1/knowledge/documents", form);
        Assert.True(upload.IsSuccessStatusCode, await upload.Content.ReadAsStringAsync());
        _bed.Tenants.Ragflow.FinishParsing(me.Subscription.RagflowDatasetId!);
        return me;
    }

    private static async Task<string> PostOkAsync(HttpClient http, string body)
    {
        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {text}");
        return text;
    }
}
