using System.Net;
using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// Upload → parse → poll → charge on the whole server against the RAGFlow fake (shapes of RAGFlow's HTTP API
/// reference v0.27: "Upload documents", "Parse documents", "List documents" with run/progress/progress_msg,
/// "Stop parsing documents", "Delete documents"), on SQLite and on PostgreSQL.
/// </summary>
public abstract class KnowledgeLifecycleTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 20, 9, 0, 0, TimeSpan.Zero);

    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(provider, Start);
        _bed.Settings["Knowledge:StuckAfter"] = "00:30:00";
        await _bed.StartAsync(credits: 100);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_upload_is_parsed_and_charged_five_credits_once_when_first_done_however_often_it_is_polled_and_across_restarts()
    {
        var (status, body) = await _bed.UploadAsync(("handbook.pdf", "%PDF-1.4 handbook"), ("faq.md", "# FAQ"));

        Assert.Equal(HttpStatusCode.Created, status);
        var uploaded = body["data"]!.AsArray();
        Assert.Equal(["handbook.pdf", "faq.md"], uploaded.Select(d => d!["name"]!.GetValue<string>()));
        Assert.All(uploaded, d => Assert.Equal("parsing", d!["status"]!.GetValue<string>()));
        Assert.All(uploaded, d => Assert.Equal("upload", d!["source"]!.GetValue<string>()));
        var remote = _bed.Ragflow.Documents(_bed.DatasetId);
        Assert.Equal(2, remote.Count);
        Assert.All(remote, d => Assert.Equal(1, _bed.Ragflow.ParseRequests(d["id"]!.GetValue<string>())));

        _bed.Ragflow.AdvanceParsing(_bed.DatasetId, 0.5);
        await _bed.PollAsync();
        var halfway = await _bed.DocumentsAsync();
        Assert.All(halfway, d => Assert.Equal(0.5, d!["progress"]!.GetValue<double>()));
        Assert.Equal(90, await _bed.AvailableAsync()); // held for the parses, not charged yet
        Assert.Equal(0, await _bed.RagChargesAsync());

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        for (var i = 0; i < 3; i++)
        {
            await _bed.PollAsync();
        }

        var done = await _bed.DocumentsAsync();
        Assert.All(done, d => Assert.Equal("done", d!["status"]!.GetValue<string>()));
        Assert.All(done, d => Assert.Equal(5, d!["credits_charged"]!.GetValue<long>()));
        Assert.Equal(90, await _bed.AvailableAsync());
        Assert.Equal(2, await _bed.RagChargesAsync());

        // A crash after charging but before recording it: the next process polls the same DONE documents again.
        await _bed.Credits.QueryAsync(db => db.KnowledgeDocuments.ExecuteUpdateAsync(s => s.SetProperty(d => d.ChargedAt, (DateTimeOffset?)null)));
        await _bed.RestartAsync();
        await _bed.PollAsync();
        await _bed.PollAsync();

        Assert.Equal(90, await _bed.AvailableAsync());
        Assert.Equal(2, await _bed.RagChargesAsync());
        Assert.All(await _bed.RowsAsync(), d => Assert.NotNull(d.ChargedAt));
        // DONE documents are never sent to parse again (that would parse, and cost, twice).
        Assert.All(remote, d => Assert.Equal(1, _bed.Ragflow.ParseRequests(d["id"]!.GetValue<string>())));
    }

    [Fact]
    public async Task A_failed_parse_shows_ragflows_message_and_costs_nothing()
    {
        await _bed.UploadAsync(("scan.pdf", "%PDF-1.4 scan"));

        _bed.Ragflow.FailParsing(_bed.DatasetId, "No text could be extracted: the PDF holds only images.");
        await _bed.PollAsync();
        await _bed.PollAsync();

        var document = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal("failed", document["status"]!.GetValue<string>());
        Assert.EndsWith("No text could be extracted: the PDF holds only images.", document["error"]!.GetValue<string>());
        Assert.Equal(0, document["credits_charged"]!.GetValue<long>());
        Assert.Equal(100, await _bed.AvailableAsync());
        Assert.Equal(0, await _bed.RagChargesAsync());
    }

    [Fact]
    public async Task A_parse_that_could_not_be_started_at_upload_is_started_by_the_next_poll_once()
    {
        _bed.Ragflow.Fail("POST", $"/api/v1/datasets/{_bed.DatasetId}/chunks", 503);

        var (status, body) = await _bed.UploadAsync(("late.txt", "late"));

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal("pending", body["data"]![0]!["status"]!.GetValue<string>());
        var ragflowId = Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>();
        Assert.Equal(0, _bed.Ragflow.ParseRequests(ragflowId));

        await _bed.PollAsync();
        await _bed.PollAsync();

        Assert.Equal(1, _bed.Ragflow.ParseRequests(ragflowId));
        Assert.Equal("parsing", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_parse_stuck_past_the_limit_is_stopped_and_restarted_once_then_failed_without_charge()
    {
        var clock = _bed.Credits.Clock!;
        await _bed.UploadAsync(("slow.pdf", "%PDF-1.4 slow"));
        var ragflowId = Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>();

        clock.Advance(TimeSpan.FromMinutes(20));
        await _bed.PollAsync();
        Assert.Equal(1, _bed.Ragflow.ParseRequests(ragflowId));

        clock.Advance(TimeSpan.FromMinutes(15));
        await _bed.PollAsync();
        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));
        Assert.Equal(1, _bed.Ragflow.Count("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/chunks"));
        Assert.Equal("parsing", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());

        clock.Advance(TimeSpan.FromMinutes(31));
        await _bed.PollAsync();
        await _bed.PollAsync();

        var document = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal("failed", document["status"]!.GetValue<string>());
        Assert.Contains("made no progress for", document["error"]!.GetValue<string>());
        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));
        Assert.Equal("CANCEL", Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["run"]!.GetValue<string>());
        Assert.Equal(0, await _bed.RagChargesAsync());
        Assert.Equal(100, await _bed.AvailableAsync()); // its hold given back at once, not when it would expire
    }

    [Fact]
    public async Task A_stuck_parse_whose_restart_fails_once_is_parsed_again_by_the_next_poll_and_does_not_stop_the_others()
    {
        var clock = _bed.Credits.Clock!;
        await _bed.UploadAsync(("first.pdf", "%PDF-1.4 first"), ("second.pdf", "%PDF-1.4 second"));
        var ragflowIds = _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["id"]!.GetValue<string>()).ToList();
        clock.Advance(TimeSpan.FromMinutes(31));
        // RAGFlow POSTs are not retried: the first restart's parse request fails after its stop went through.
        _bed.Ragflow.Fail("POST", $"/api/v1/datasets/{_bed.DatasetId}/chunks", 503, times: 1);

        await _bed.PollAsync();

        // Both were stopped; the one whose restart failed waits to be parsed again, the other restarted in the same poll.
        Assert.Equal(2, _bed.Ragflow.Count("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/chunks"));
        var rows = await _bed.RowsAsync();
        Assert.Equal(
            [(ParseStates.Running, 2, (string?)null), (ParseStates.Unstart, 1, null)],
            rows.Select(r => (r.Status, r.ParseAttempts, r.Error)).OrderBy(r => r.Status == ParseStates.Unstart));

        await _bed.PollAsync();

        Assert.All(await _bed.RowsAsync(), r => Assert.Equal((ParseStates.Running, 2, (string?)null), (r.Status, r.ParseAttempts, r.Error)));
        Assert.All(ragflowIds, id => Assert.Equal(2, _bed.Ragflow.ParseRequests(id)));
        Assert.All(_bed.Ragflow.Documents(_bed.DatasetId), d => Assert.Equal("RUNNING", d["run"]!.GetValue<string>()));

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        await _bed.PollAsync();

        Assert.All(await _bed.DocumentsAsync(), d => Assert.Equal(("done", 5L), (d!["status"]!.GetValue<string>(), d["credits_charged"]!.GetValue<long>())));
        Assert.Equal(2, await _bed.RagChargesAsync());
        Assert.Equal(90, await _bed.AvailableAsync());
    }

    [Theory]
    [InlineData(503, null)]
    [InlineData(200, """{"code": 100, "message": "ConnectionError: Elasticsearch is unavailable"}""")]
    public async Task A_stuck_parse_whose_stop_fails_for_now_is_left_to_the_next_poll_and_does_not_stop_the_others(int status, string? body)
    {
        var clock = _bed.Credits.Clock!;
        await _bed.UploadAsync(("first.pdf", "%PDF-1.4 first"), ("second.pdf", "%PDF-1.4 second"));
        var ragflowIds = _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["id"]!.GetValue<string>()).ToList();
        clock.Advance(TimeSpan.FromMinutes(31));
        // The first stop fails on both attempts (Ragflow:RetryAttempts is 1); the second goes through.
        _bed.Ragflow.Fail("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/chunks", status, times: 2, body: body);

        await _bed.PollAsync();

        // The one whose stop failed is left as it was (still running, not restarted); the other restarted in the same poll.
        var rows = await _bed.RowsAsync();
        Assert.Equal(
            [(ParseStates.Running, 1, (string?)null), (ParseStates.Running, 2, null)],
            rows.Select(r => (r.Status, r.ParseAttempts, r.Error)).OrderBy(r => r.ParseAttempts));
        Assert.Equal([1, 2], ragflowIds.Select(_bed.Ragflow.ParseRequests).Order());

        await _bed.PollAsync();

        // Still stuck, so stopped again, this time with success, and restarted once.
        Assert.All(await _bed.RowsAsync(), r => Assert.Equal((ParseStates.Running, 2, (string?)null), (r.Status, r.ParseAttempts, r.Error)));
        Assert.All(ragflowIds, id => Assert.Equal(2, _bed.Ragflow.ParseRequests(id)));

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();

        Assert.All(await _bed.DocumentsAsync(), d => Assert.Equal(("done", 5L), (d!["status"]!.GetValue<string>(), d["credits_charged"]!.GetValue<long>())));
        Assert.Equal(2, await _bed.RagChargesAsync());
        Assert.Equal(90, await _bed.AvailableAsync());
    }

    [Fact]
    public async Task A_long_parse_that_keeps_making_progress_is_left_to_finish_and_only_a_stalled_one_is_restarted()
    {
        var clock = _bed.Credits.Clock!;
        await _bed.UploadAsync(("scan.pdf", "%PDF-1.4 five hundred scanned pages"));
        var ragflowId = Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>();

        // Knowledge:StuckAfter is 30 minutes here; the parse runs far longer, but moves between polls.
        foreach (var progress in new[] { 0.3, 0.6, 0.9 })
        {
            clock.Advance(TimeSpan.FromMinutes(25));
            _bed.Ragflow.AdvanceParsing(_bed.DatasetId, progress);
            await _bed.PollAsync();
        }

        Assert.Equal(1, _bed.Ragflow.ParseRequests(ragflowId));
        Assert.Equal("parsing", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());

        // No progress for longer than the limit: stuck, stopped and started again.
        clock.Advance(TimeSpan.FromMinutes(31));
        await _bed.PollAsync();
        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));
    }

    [Fact]
    public async Task A_document_a_page_read_missed_is_asked_for_by_id_and_not_taken_for_gone()
    {
        await _bed.UploadAsync(("shifted.pdf", "%PDF-1.4 shifted"));
        await _bed.PollAsync();
        // A deletion before it shifted the pages while they were read: the listing came back without it.
        _bed.Ragflow.Fail("GET", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200, times: 1, body: """{"code": 0, "data": {"total": 0, "docs": []}}""");
        _bed.Ragflow.FinishParsing(_bed.DatasetId);

        await _bed.PollAsync();

        var document = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal("done", document["status"]!.GetValue<string>());
        Assert.Equal(1, await _bed.RagChargesAsync());
    }

    [Fact]
    public async Task A_parse_ragflow_lost_before_starting_it_is_asked_for_again_once_then_failed_and_given_back()
    {
        var clock = _bed.Credits.Clock!;
        await _bed.UploadAsync(("lost.pdf", "%PDF-1.4 lost"));
        var ragflowId = Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>();
        _bed.Ragflow.LoseParsing(_bed.DatasetId);

        clock.Advance(TimeSpan.FromMinutes(20));
        await _bed.PollAsync();
        Assert.Equal(1, _bed.Ragflow.ParseRequests(ragflowId));

        clock.Advance(TimeSpan.FromMinutes(15));
        await _bed.PollAsync();
        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));
        Assert.Equal("RUNNING", Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["run"]!.GetValue<string>());
        Assert.Equal("parsing", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());

        _bed.Ragflow.LoseParsing(_bed.DatasetId);
        clock.Advance(TimeSpan.FromMinutes(31));
        await _bed.PollAsync();
        await _bed.PollAsync();

        var document = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal("failed", document["status"]!.GetValue<string>());
        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));
        Assert.Equal(0, await _bed.RagChargesAsync());
        Assert.Equal(100, await _bed.AvailableAsync());
        // Not left queued in RAGFlow, where a delayed task could still parse it, unpaid.
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Fact]
    public async Task A_deleted_document_leaves_ragflow_and_the_list_and_names_serve_citations()
    {
        var (_, body) = await _bed.UploadAsync(("a.txt", "alpha"), ("b.txt", "beta"));
        var first = body["data"]![0]!["id"]!.GetValue<string>();

        var names = await _bed.Server.Services.GetRequiredService<KnowledgeDocumentNames>().ForSubscriptionAsync(_bed.Subscription.Id, CancellationToken.None);
        Assert.Equal(["a.txt", "b.txt"], names.Values.Select(n => n.Name).Order());
        Assert.Equal(
            _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["id"]!.GetValue<string>()).Order(),
            names.Keys.Order());

        var (status, deleted) = await _bed.DeleteAsync($"/v1/knowledge/documents/{first}");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(deleted["deleted"]!.GetValue<bool>());
        Assert.Equal(["b.txt"], _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["name"]!.GetValue<string>()));
        Assert.Equal(["b.txt"], (await _bed.DocumentsAsync()).Select(d => d!["name"]!.GetValue<string>()));
        var (again, error) = await _bed.DeleteAsync($"/v1/knowledge/documents/{first}");
        Assert.Equal(HttpStatusCode.NotFound, again);
        KnowledgeTestBed.AssertError(error, "document_not_found");
    }
}

/// <summary>The Quartz job on the real clock (Quartz schedules by the host's TimeProvider), in memory on SQLite and clustered on PostgreSQL.</summary>
public abstract class KnowledgeJobTests(DatabaseProvider provider) : IAsyncLifetime
{
    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(provider);
        _bed.Settings["Knowledge:PollInterval"] = "00:00:00.200";
        await _bed.StartAsync(credits: 100);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task The_quartz_job_polls_by_itself_until_the_document_is_done_and_charged()
    {
        await _bed.UploadAsync(("notes.txt", "plain notes"));

        _bed.Ragflow.FinishParsing(_bed.DatasetId);

        await Eventually.TrueAsync(async () => (await _bed.RowsAsync()).Single().ChargedAt is not null, TimeSpan.FromSeconds(20), "the job charges the parsed document");
        Assert.Equal(95, await _bed.AvailableAsync());
        Assert.Equal(1, await _bed.RagChargesAsync());
    }
}

public sealed class KnowledgeJobOnSqliteTests() : KnowledgeJobTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeJobOnPostgresTests() : KnowledgeJobTests(DatabaseProvider.Postgres);

public sealed class KnowledgeLifecycleOnSqliteTests() : KnowledgeLifecycleTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeLifecycleOnPostgresTests() : KnowledgeLifecycleTests(DatabaseProvider.Postgres);
