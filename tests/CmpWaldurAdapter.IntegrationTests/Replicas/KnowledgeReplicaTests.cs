using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Knowledge.Base;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using static CmpWaldurAdapter.Testing.Fakes.NotionFake;

namespace CmpWaldurAdapter.IntegrationTests.Replicas;

/// <summary>
/// Two adapter instances on one PostgreSQL database, re-syncing the same knowledge connector at the same
/// moment: the database lease lets one of them sync, so a changed page is uploaded once.
/// </summary>
public sealed class KnowledgeReplicaTests : IAsyncLifetime
{
    private const string NotionToken = "secret_buyer_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

    private KnowledgeTestBed _bed = null!;
    private RunningAdapter _second = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(DatabaseProvider.Postgres);
        _bed.Notion.AddWorkspace(NotionToken);
        await _bed.StartAsync(credits: 100);
        _second = await AdapterTestHost.StartServerAsync(_bed.Settings, new CapturedLogs());
    }

    public async Task DisposeAsync()
    {
        await _second.DisposeAsync();
        await _bed.DisposeAsync();
    }

    [Fact]
    public async Task Two_replicas_re_syncing_one_connector_at_once_upload_the_changed_page_once()
    {
        var database = _bed.Notion.AddDatabase(NotionToken);
        var pages = Enumerable.Range(1, 3).Select(i => _bed.Notion.AddPage(NotionToken, $"Policy {i}", database, Paragraph($"Rule {i}."))).ToList();
        var (connected, body) = await _bed.PostJsonAsync("/v1/knowledge/connectors/notion", new JsonObject { ["integration_token"] = NotionToken, ["ids"] = new JsonArray(database) });
        Assert.Equal(HttpStatusCode.Created, connected);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var uploadsPath = $"/api/v1/datasets/{_bed.DatasetId}/documents";
        var uploadsBefore = _bed.Ragflow.Count("POST", uploadsPath);

        _bed.Notion.EditPage(pages[1], "Policy 2", Paragraph("Rule 2, revised."));
        // Listing the source takes a while, so both syncs are under way at the same time.
        _bed.Notion.Observe = (request, _) =>
        {
            if (request.Path.EndsWith("/query", StringComparison.Ordinal))
            {
                Thread.Sleep(TimeSpan.FromSeconds(1.5));
            }
        };
        var results = await Task.WhenAll(SyncAsync(_bed.Server, connector), SyncAsync(_second, connector));
        _bed.Notion.Observe = null;

        var synced = Assert.Single(results, r => r.Status == HttpStatusCode.OK);
        Assert.Equal(1, synced.Body["sync"]!["replaced"]!.GetValue<int>());
        var refused = Assert.Single(results, r => r.Status == HttpStatusCode.Conflict);
        KnowledgeTestBed.AssertError(refused.Body, "sync_in_progress");
        Assert.Equal(uploadsBefore + 1, _bed.Ragflow.Count("POST", uploadsPath));
        Assert.Equal(3, _bed.Ragflow.Documents(_bed.DatasetId).Count);
        Assert.Equal(3, (await _bed.RowsAsync()).Count);

        // The lease is given back: the other replica syncs next, and finds nothing left to do.
        Assert.Equal(0, await _bed.Credits.QueryAsync(db => db.Leases.CountAsync(l => l.ExpiresAt != DatabaseLeases.Released)));
        var (again, next) = await SyncAsync(_second, connector);
        Assert.Equal(HttpStatusCode.OK, again);
        Assert.Equal(3, next["sync"]!["unchanged"]!.GetValue<int>());
        Assert.Equal(uploadsBefore + 1, _bed.Ragflow.Count("POST", uploadsPath));
    }

    private async Task<(HttpStatusCode Status, JsonObject Body)> SyncAsync(RunningAdapter server, string connector) =>
        await KnowledgeTestBed.SendAsync(server, HttpMethod.Post, $"/v1/knowledge/connectors/{connector}/sync", new StringContent("{}", Encoding.UTF8, "application/json"), _bed.Key);
}
