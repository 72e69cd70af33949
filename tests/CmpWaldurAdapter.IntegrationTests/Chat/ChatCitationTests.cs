using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// Answers name the knowledge-base documents they drew on when the subscription's settings ask for
/// citations, and the chat endpoint's requests are counted in /metrics by status, with the credits and upstream calls they made.
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
    public async Task Chat_requests_are_counted_in_metrics_by_status_with_the_credits_and_upstream_calls_they_made()
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

        using (var http = _bed.Http("sk_live_unknown"))
        {
            using var unknown = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message": "hello"}"""));
            Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        }

        using var anonymous = _bed.Http(null);
        var metrics = "";
        // Counted when each response completes, and the answer's hold settles while it is sent: both may trail the response.
        await Eventually.TrueAsync(async () =>
        {
            metrics = await anonymous.GetStringAsync("/metrics");
            return metrics.Contains("cmp_chat_requests_total{status=\"401\"} 1", StringComparison.Ordinal)
                && metrics.Contains("cmp_credits_charged_total{", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10));

        Assert.Equal(
            ["cmp_chat_requests_total{status=\"200\"} 1", "cmp_chat_requests_total{status=\"401\"} 1", "cmp_chat_requests_total{status=\"402\"} 1"],
            Lines(metrics, "cmp_chat_requests_total{"));
        Assert.Contains("cmp_chat_request_duration_seconds_count{status=\"200\"} 1", metrics);
        // The catalogue's chat_message price, under the Waldur component usage is reported in.
        Assert.Equal(["cmp_credits_charged_total{component=\"chat_credits\"} 2"], Lines(metrics, "cmp_credits_charged_total{"));
        // The answer's retrieval and run (and the provisioning before them) are counted under their own upstreams, none
        // as failed. Besides, RAGFlow may show what is expected of it: the provisioning's lookups of names not taken
        // (answered "not found", a client error), and the refused message's retrieval, started while its credits were
        // held and then dropped (discarded, when it had not finished yet; never canceled: no client left).
        var upstream = Lines(metrics, "cmp_upstream_requests_total{");
        Assert.Contains(upstream, l => l.StartsWith("cmp_upstream_requests_total{upstream=\"langflow\",outcome=\"success\"} ", StringComparison.Ordinal));
        Assert.Contains(upstream, l => l.StartsWith("cmp_upstream_requests_total{upstream=\"ragflow\",outcome=\"success\"} ", StringComparison.Ordinal));
        Assert.Contains(upstream, l => l.StartsWith("cmp_upstream_requests_total{upstream=\"waldur\",outcome=\"success\"} ", StringComparison.Ordinal));
        Assert.True(upstream.TrueForAll(l => l.Contains("outcome=\"success\"", StringComparison.Ordinal)
            || l.StartsWith("cmp_upstream_requests_total{upstream=\"ragflow\",outcome=\"client_error\"} ", StringComparison.Ordinal)
            || l.StartsWith("cmp_upstream_requests_total{upstream=\"ragflow\",outcome=\"discarded\"} 1", StringComparison.Ordinal)), string.Join('\n', upstream));
    }

    private static List<string> Lines(string metrics, string prefix) =>
        [.. metrics.Split('\n').Where(l => l.StartsWith(prefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal)];

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
