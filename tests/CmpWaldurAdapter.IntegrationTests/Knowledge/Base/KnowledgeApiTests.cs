using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.IntegrationTests.Knowledge.Sources;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Tenants;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>Limits, authorization and isolation of <c>/v1/knowledge</c>: every refusal is a clear 4xx and sends nothing to RAGFlow.</summary>
public sealed class KnowledgeApiTests : IAsyncLifetime
{
    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(DatabaseProvider.Sqlite);
        _bed.Settings["Knowledge:MaxFileBytes"] = "1000";
        _bed.Settings["Knowledge:MaxDocumentsPerSubscription"] = "3";
        await _bed.StartAsync(credits: 12);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_file_over_the_size_limit_is_413_and_nothing_of_the_request_is_uploaded()
    {
        var (status, body) = await _bed.UploadAsync(("small.txt", "ok"), ("big.txt", new string('x', 1001)));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, status);
        KnowledgeTestBed.AssertError(body, "file_too_large");
        Assert.Contains("big.txt", body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Theory]
    [InlineData("setup.exe")]
    [InlineData("archive.zip")]
    [InlineData("no-extension")]
    public async Task A_type_not_accepted_is_415(string name)
    {
        var (status, body) = await _bed.UploadAsync((name, "data"));

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
        KnowledgeTestBed.AssertError(body, "unsupported_file_type");
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Fact]
    public async Task A_file_name_over_ragflows_255_utf8_bytes_uploads_with_its_name_shortened()
    {
        // 100 CJK characters are 300 UTF-8 bytes: RAGFlow refuses the name (code 101 under HTTP 200), so it is shortened first.
        var name = new string('报', 100) + ".pdf";

        var (status, body) = await _bed.UploadAsync((name, "%PDF-1.4 report"));

        Assert.Equal(HttpStatusCode.Created, status);
        var uploaded = Assert.Single(body["data"]!.AsArray())!["name"]!.GetValue<string>();
        Assert.Equal(new string('报', 78) + ".pdf", uploaded); // 78 × 3 + 4 = 238 bytes, at most 240
        Assert.Equal(uploaded, Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Every_accepted_type_uploads()
    {
        _bed.Settings["Knowledge:MaxDocumentsPerSubscription"] = "20";
        await _bed.GrantAsync(100);
        await _bed.RestartAsync();
        string[] names = ["a.pdf", "b.docx", "c.txt", "d.md", "e.html", "f.csv", "g.xlsx", "h.pptx", "i.json"];

        var (status, body) = await _bed.UploadAsync(names.Select(n => (n, "content")).ToArray());

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(names, body["data"]!.AsArray().Select(d => d!["name"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Files_of_one_request_are_streamed_to_the_knowledge_base_whole_one_after_another()
    {
        _bed.Settings["Knowledge:MaxFileBytes"] = "1000000";
        await _bed.GrantAsync(100);
        await _bed.RestartAsync();
        // Past ASP.NET's 64 KB in memory, a form file waits in a temporary file: each is read from there as it is sent.
        var large = new string('a', 300 * 1024);
        var other = new string('b', 200 * 1024) + "end";

        var (status, body) = await _bed.UploadAsync(("large.txt", large), ("other.txt", other));

        Assert.Equal(HttpStatusCode.Created, status);
        var sizes = _bed.Ragflow.Documents(_bed.DatasetId).ToDictionary(d => d["name"]!.GetValue<string>(), d => (long)d["size"]!.GetValue<int>());
        Assert.Equal(new Dictionary<string, long> { ["large.txt"] = large.Length, ["other.txt"] = other.Length }, sizes);
        Assert.Equal([(long)large.Length, other.Length], body["data"]!.AsArray().Select(d => d!["size_bytes"]!.GetValue<long>()));
    }

    [Fact]
    public async Task Going_over_the_documents_per_subscription_is_409()
    {
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("a.txt", "a"), ("b.txt", "b"))).Status);

        var (status, body) = await _bed.UploadAsync(("c.txt", "c"), ("d.txt", "d"));

        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(body, "document_limit_reached");
        Assert.Equal(2, _bed.Ragflow.Documents(_bed.DatasetId).Count);
    }

    [Fact]
    public async Task When_the_balance_cannot_cover_the_parses_the_answer_is_402_before_anything_is_uploaded()
    {
        // 12 credits: two documents (10) fit, three (15) do not.
        var (status, body) = await _bed.UploadAsync(("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c"));

        Assert.Equal(HttpStatusCode.PaymentRequired, status);
        KnowledgeTestBed.AssertError(body, "insufficient_credits");
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("a.txt", "a"), ("b.txt", "b"))).Status);
    }

    [Fact]
    public async Task Ragflow_refusing_an_upload_is_502_with_its_message_and_records_nothing()
    {
        _bed.Ragflow.Fail("POST", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200, body: """{"code": 500, "message": "The type of file 'a.txt' is not supported."}""");

        var (status, body) = await _bed.UploadAsync(("a.txt", "a"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        KnowledgeTestBed.AssertError(body, "knowledge_upstream_error");
        Assert.Contains("not supported", body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(await _bed.DocumentsAsync());
        Assert.Equal(12, await _bed.AvailableAsync());
    }

    [Fact]
    public async Task A_dataset_gone_from_ragflow_is_a_502_that_does_not_name_it_and_the_log_does()
    {
        await _bed.Server.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [_bed.DatasetId] }, CancellationToken.None);

        var (status, body) = await _bed.UploadAsync(("a.txt", "a"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        KnowledgeTestBed.AssertError(body, "knowledge_upstream_error");
        var message = body["error"]!["message"]!.GetValue<string>();
        Assert.Contains("a.txt", message, StringComparison.Ordinal);
        Assert.DoesNotContain(_bed.DatasetId, message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("own", message, StringComparison.Ordinal);
        Assert.Contains(_bed.Credits.Logs.Lines, line => line.Contains($"You don't own the dataset {_bed.DatasetId}", StringComparison.Ordinal));
    }

    [Theory]
    // An unhandled exception: code 100 with repr(e).
    [InlineData(100, "ConnectionError(\"Elasticsearch unreachable for index ragflow_{0}\")")]
    // Files refused, one line each: a storage exception naming the dataset's bucket.
    [InlineData(500, "a.txt: S3Error(code=NoSuchBucket, resource=/{0}/a.txt)")]
    [InlineData(500, "Traceback (most recent call last):\n  File \"/ragflow/api/db/services/file_service.py\", line 412, in upload_document\nKeyError: 'kb {0}'")]
    public async Task Ragflows_exception_text_and_ids_never_reach_the_buyer(int code, string upstream)
    {
        var text = string.Format(System.Globalization.CultureInfo.InvariantCulture, upstream, _bed.DatasetId);
        _bed.Ragflow.Fail("POST", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200, body: new JsonObject { ["code"] = code, ["message"] = text }.ToJsonString());

        var (status, body) = await _bed.UploadAsync(("a.txt", "a"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        KnowledgeTestBed.AssertError(body, "knowledge_upstream_error");
        var message = body["error"]!["message"]!.GetValue<string>();
        Assert.DoesNotContain(_bed.DatasetId, message, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("Error", message, StringComparison.Ordinal);
        Assert.DoesNotContain("Traceback", message, StringComparison.Ordinal);
        Assert.Empty(await _bed.DocumentsAsync());
    }

    [Fact]
    public async Task A_file_reason_naming_an_id_reaches_the_buyer_without_it()
    {
        _bed.Ragflow.Fail("POST", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200,
            body: $$"""{"code": 500, "message": "a.txt: Can't find this dataset {{_bed.DatasetId}}!\nb.txt: This type of file has not been supported yet!"}""");

        var (status, body) = await _bed.UploadAsync(("a.txt", "a"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        var message = body["error"]!["message"]!.GetValue<string>();
        Assert.Contains("a.txt: Can't find this dataset …!", message, StringComparison.Ordinal);
        Assert.Contains("b.txt: This type of file has not been supported yet!", message, StringComparison.Ordinal);
        Assert.DoesNotContain(_bed.DatasetId, message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task An_upload_whose_answer_is_lost_is_not_sent_again_so_ragflow_holds_no_twin()
    {
        _bed.Ragflow.LoseAnswer("POST", $"/api/v1/datasets/{_bed.DatasetId}/documents");

        var (status, _) = await _bed.UploadAsync(("a.txt", "a"));

        Assert.Equal(HttpStatusCode.BadGateway, status);
        Assert.Equal(1, _bed.Ragflow.Count("POST", $"/api/v1/datasets/{_bed.DatasetId}/documents"));
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Fact]
    public async Task A_name_already_taken_keeps_the_name_ragflow_gives_it()
    {
        await _bed.UploadAsync(("guide.txt", "one"));

        var (_, body) = await _bed.UploadAsync(("guide.txt", "two"));

        Assert.Equal("guide(1).txt", body["data"]![0]!["name"]!.GetValue<string>());
        Assert.Equal(["guide.txt", "guide(1).txt"], (await _bed.DocumentsAsync()).Select(d => d!["name"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("sk_live_not_a_key")]
    public async Task Without_a_valid_secret_key_every_endpoint_is_401(string? key)
    {
        var results = new List<(HttpStatusCode, JsonObject)>
        {
            await _bed.GetAsync("/v1/knowledge/documents", key ?? string.Empty),
            await _bed.UploadAsync(key ?? string.Empty, ("a.txt", "a")),
            await _bed.PostJsonAsync("/v1/knowledge/urls", new JsonObject { ["url"] = "https://example.com/" }, key ?? string.Empty),
            await _bed.DeleteAsync($"/v1/knowledge/documents/{Guid.NewGuid()}", key ?? string.Empty),
        };

        Assert.All(results, r => Assert.Equal(HttpStatusCode.Unauthorized, r.Item1));
        Assert.All(results, r => KnowledgeTestBed.AssertError(r.Item2, "invalid_api_key"));
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Fact]
    public async Task A_subscription_sees_and_deletes_only_its_own_documents()
    {
        var (_, body) = await _bed.UploadAsync(("mine.txt", "mine"));
        var mine = body["data"]![0]!["id"]!.GetValue<string>();
        var (_, otherDataset, otherKey) = await _bed.AddSubscriptionAsync(credits: 50);

        var (status, error) = await _bed.DeleteAsync($"/v1/knowledge/documents/{mine}", otherKey);
        var (uploadStatus, _) = await _bed.UploadAsync(otherKey, ("theirs.txt", "theirs"));

        Assert.Equal(HttpStatusCode.NotFound, status);
        KnowledgeTestBed.AssertError(error, "document_not_found");
        Assert.Equal(HttpStatusCode.Created, uploadStatus);
        Assert.Equal(["theirs.txt"], (await _bed.DocumentsAsync(otherKey)).Select(d => d!["name"]!.GetValue<string>()));
        Assert.Equal(["mine.txt"], (await _bed.DocumentsAsync()).Select(d => d!["name"]!.GetValue<string>()));
        Assert.Equal(["mine.txt"], _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["name"]!.GetValue<string>()));
        Assert.Equal(["theirs.txt"], _bed.Ragflow.Documents(otherDataset).Select(d => d["name"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_paused_subscription_cannot_add_documents()
    {
        await _bed.Credits.QueryAsync(async db =>
        {
            (await db.Subscriptions.FindAsync(_bed.Subscription.Id))!.Paused = true;
            return await db.SaveChangesAsync();
        });

        var (status, body) = await _bed.UploadAsync(("a.txt", "a"));

        Assert.Equal(HttpStatusCode.Forbidden, status);
        KnowledgeTestBed.AssertError(body, "subscription_suspended");
    }

    [Theory]
    [InlineData(SubscriptionState.Terminated)]
    [InlineData(SubscriptionState.Terminating)]
    public async Task The_key_of_an_ended_subscription_is_401_as_on_the_chat_api_and_deletes_nothing(SubscriptionState state)
    {
        var (_, body) = await _bed.UploadAsync(("kept.txt", "kept"));
        var document = body["data"]![0]!["id"]!.GetValue<string>();
        // Waldur erased the resource (terminated, its keys never revoked) or a Terminate runs: the key still exists.
        await SetAsync(s => s.State = state);

        var results = new List<(HttpStatusCode, JsonObject)>
        {
            await _bed.GetAsync("/v1/knowledge/documents"),
            await _bed.DeleteAsync($"/v1/knowledge/documents/{document}"),
            await _bed.GetAsync("/v1/knowledge/connectors"),
        };

        Assert.All(results, r => Assert.Equal(HttpStatusCode.Unauthorized, r.Item1));
        Assert.All(results, r => KnowledgeTestBed.AssertError(r.Item2, "invalid_api_key"));
        Assert.Equal(["kept.txt"], _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["name"]!.GetValue<string>()));
        Assert.Single(await _bed.RowsAsync());
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task A_paused_or_downscaled_subscription_still_lists_its_documents(bool paused, bool downscaled)
    {
        await _bed.UploadAsync(("kept.txt", "kept"));
        await SetAsync(s => (s.Paused, s.Downscaled) = (paused, downscaled));

        var (status, body) = await _bed.GetAsync("/v1/knowledge/documents");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(["kept.txt"], body["data"]!.AsArray().Select(d => d!["name"]!.GetValue<string>()));
    }

    private Task SetAsync(Action<Subscription> change) => _bed.Credits.QueryAsync(async db =>
    {
        change((await db.Subscriptions.FindAsync(_bed.Subscription.Id))!);
        return await db.SaveChangesAsync();
    });

    [Fact]
    public async Task A_body_that_is_not_multipart_is_415()
    {
        var (status, body) = await _bed.SendAsync(HttpMethod.Post, "/v1/knowledge/documents", new StringContent("{}", Encoding.UTF8, "application/json"), _bed.Key);

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, status);
        KnowledgeTestBed.AssertError(body, "unsupported_media_type");
    }
}

/// <summary>URLs through the API: the SSRF guard refuses internal addresses, before any connection and after redirects.</summary>
public sealed class KnowledgeUrlTests : IAsyncLifetime
{
    private KnowledgeTestBed _bed = null!;
    private LoopbackSite _site = null!;

    public async Task InitializeAsync()
    {
        _site = await LoopbackSite.StartAsync();
        _bed = await KnowledgeTestBed.CreateAsync(DatabaseProvider.Sqlite);
    }

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        await _site.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, JsonObject Body)> AddAsync(string url, bool allowLoopback)
    {
        _bed.Settings["Knowledge:Url:AllowLoopback"] = allowLoopback ? "true" : "false";
        await _bed.StartAsync(credits: 50);
        return await _bed.PostJsonAsync("/v1/knowledge/urls", new JsonObject { ["url"] = url });
    }

    [Fact]
    public async Task A_public_page_is_fetched_converted_and_added_as_a_url_document()
    {
        var (status, body) = await AddAsync(_site.At("/page.html"), allowLoopback: true);

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("url", body["source"]!.GetValue<string>());
        Assert.Equal(_site.At("/page.html"), body["source_url"]!.GetValue<string>());
        Assert.EndsWith(".md", body["name"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Fact]
    public async Task Loopback_is_refused_when_not_allowed_without_a_connection()
    {
        var (status, body) = await AddAsync(_site.At("/page.html"), allowLoopback: false);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        KnowledgeTestBed.AssertError(body, "source_rejected");
        Assert.Empty(_site.Requests);
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/iam/security-credentials/")]
    [InlineData("http://[::ffff:169.254.169.254]/latest/meta-data/")]
    [InlineData("http://10.0.0.5/admin")]
    [InlineData("file:///etc/passwd")]
    public async Task Internal_addresses_and_other_schemes_are_refused(string url)
    {
        var (status, body) = await AddAsync(url, allowLoopback: true);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        KnowledgeTestBed.AssertError(body, "source_rejected");
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Theory]
    [InlineData("http://192.168.1.1/router")]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    public async Task A_redirect_to_a_private_address_is_refused(string target)
    {
        var (status, body) = await AddAsync(_site.At("/redirect?to=" + Uri.EscapeDataString(target)), allowLoopback: true);

        Assert.Equal(HttpStatusCode.BadRequest, status);
        KnowledgeTestBed.AssertError(body, "source_rejected");
        Assert.Equal(1, _site.Count("/redirect"));
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }
}
