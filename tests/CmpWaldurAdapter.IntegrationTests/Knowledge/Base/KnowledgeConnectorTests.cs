using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Knowledge.Connectors;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using static CmpWaldurAdapter.Testing.Fakes.NotionFake;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// Notion and Confluence connectors through the API, against the WireMock fakes of Notion's API (version
/// 2022-06-28: "Query a database", "Retrieve block children", pagination with has_more/next_cursor) and
/// Confluence Cloud REST v1 ("Get content" with start/limit, "Get space", Basic auth), and the RAGFlow fake.
/// </summary>
public abstract class KnowledgeConnectorTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string NotionToken = "secret_buyer_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
    private const string Email = "kb@acme.example";
    private const string ConfluenceToken = "ATATT3xFfGF0confluence-token-0123456789";

    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(provider);
        _bed.Settings["Knowledge:Notion:PageSize"] = "2";
        _bed.Settings["Knowledge:Confluence:PageSize"] = "2";
        _bed.Notion.AddWorkspace(NotionToken);
        _bed.Confluence.AddAccount(Email, ConfluenceToken);
        _bed.Confluence.AddSpace("KB", "Knowledge", Email);
        await _bed.StartAsync(credits: 100);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private (string Database, List<string> Pages) NotionDatabase(int pages)
    {
        var database = _bed.Notion.AddDatabase(NotionToken);
        var ids = Enumerable.Range(1, pages).Select(i => _bed.Notion.AddPage(NotionToken, $"Policy {i}", database, Paragraph($"Rule {i}."))).ToList();
        return (database, ids);
    }

    private Task<(HttpStatusCode Status, JsonObject Body)> ConnectNotionAsync(params string[] ids) =>
        _bed.PostJsonAsync("/v1/knowledge/connectors/notion", new JsonObject { ["integration_token"] = NotionToken, ["ids"] = new JsonArray(ids.Select(i => (JsonNode)i).ToArray()) });

    private Task<(HttpStatusCode Status, JsonObject Body)> ConnectConfluenceAsync(string token = ConfluenceToken) =>
        _bed.PostJsonAsync("/v1/knowledge/connectors/confluence", new JsonObject
        {
            ["site_url"] = _bed.Confluence.Url.ToString(),
            ["email"] = Email,
            ["api_token"] = token,
            ["space_key"] = "KB",
        });

    private Dictionary<string, string> RagflowIdsByName() =>
        _bed.Ragflow.Documents(_bed.DatasetId).ToDictionary(d => d["name"]!.GetValue<string>(), d => d["id"]!.GetValue<string>());

    [Fact]
    public async Task Connecting_notion_reads_a_database_page_by_page_and_a_re_sync_replaces_only_the_changed_page()
    {
        var (database, pages) = NotionDatabase(3);

        var (status, body) = await ConnectNotionAsync(database);

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(3, body["sync"]!["added"]!.GetValue<int>());
        Assert.Equal(2, _bed.Notion.Count("POST", $"/v1/databases/{database}/query"));
        var documents = await _bed.DocumentsAsync();
        Assert.Equal(3, documents.Count);
        Assert.All(documents, d => Assert.Equal("notion", d!["source"]!.GetValue<string>()));
        var before = RagflowIdsByName();

        _bed.Notion.EditPage(pages[1], "Policy 2", Paragraph("Rule 2, revised."));
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var (syncStatus, sync) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{connector}/sync", []);

        Assert.Equal(HttpStatusCode.OK, syncStatus);
        Assert.Equal((0, 1, 0, 2), (sync["sync"]!["added"]!.GetValue<int>(), sync["sync"]!["replaced"]!.GetValue<int>(), sync["sync"]!["removed"]!.GetValue<int>(), sync["sync"]!["unchanged"]!.GetValue<int>()));
        var after = RagflowIdsByName();
        // The same names: the old version left before the new one arrived, so RAGFlow renamed nothing to "x(1).md".
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        var changed = before.Keys.Single(name => name.Contains("policy-2", StringComparison.Ordinal));
        Assert.NotEqual(before[changed], after[changed]);
        foreach (var name in before.Keys.Where(n => n != changed))
        {
            Assert.Equal(before[name], after[name]);
            Assert.Equal(1, _bed.Ragflow.ParseRequests(after[name]));
        }

        Assert.Equal(3, (await _bed.DocumentsAsync()).Count);
    }

    [Fact]
    public async Task A_sync_whose_lease_was_taken_over_mid_sync_records_nothing_more_and_takes_its_upload_out_of_ragflow()
    {
        var (database, pages) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = Guid.Parse(body["connector"]!["id"]!.GetValue<string>());
        var before = await ConnectorRowAsync(connector);
        _bed.Notion.EditPage(pages[0], "Policy 1", Paragraph("Rule 1, revised."));
        var lease = ConnectorService.SyncLeaseName(connector);
        var uploads = 0;
        _bed.Ragflow.Observe = (message, _) =>
        {
            // While the changed page is uploaded, the sync's lease ran out as far as another replica can tell, and that one took it.
            if (message.Method == "POST" && message.Path == $"/api/v1/datasets/{_bed.DatasetId}/documents" && Interlocked.Increment(ref uploads) == 1)
            {
                _bed.Credits.QueryAsync(db => db.Leases.Where(l => l.Name == lease).ExecuteUpdateAsync(set => set
                    .SetProperty(l => l.Owner, "another-replica")
                    .SetProperty(l => l.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5)))).GetAwaiter().GetResult();
            }
        };

        var (status, error) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{connector}/sync", []);

        Assert.Equal(1, uploads);
        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, "sync_in_progress");
        // The old version left while the lease was still its own; the new one, uploaded as it was taken over, is not recorded
        // and not left in RAGFlow: the new holder's sync adds it.
        Assert.Empty(await _bed.RowsAsync());
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        var after = await ConnectorRowAsync(connector);
        Assert.Equal((before.LastSyncedAt, before.UpdatedAt), (after.LastSyncedAt, after.UpdatedAt));
        Assert.Equal("another-replica", await _bed.Credits.QueryAsync(db => db.Leases.Where(l => l.Name == lease).Select(l => l.Owner).SingleAsync()));
    }

    private Task<KnowledgeConnector> ConnectorRowAsync(Guid connector) =>
        _bed.Credits.QueryAsync(db => db.KnowledgeConnectors.AsNoTracking().SingleAsync(c => c.Id == connector));

    private string SetupLease => $"knowledge-connector-setup:{_bed.Subscription.Id:N}";

    /// <summary>Another replica takes the lease, as it does once this process's holding ran out (its renewals lost for a whole lease).</summary>
    private void TakeOver(string lease) =>
        _bed.Credits.QueryAsync(db => db.Leases.Where(l => l.Name == lease).ExecuteUpdateAsync(set => set
            .SetProperty(l => l.Owner, "another-replica")
            .SetProperty(l => l.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(5)))).GetAwaiter().GetResult();

    private Task<string> LeaseOwnerAsync(string lease) =>
        _bed.Credits.QueryAsync(db => db.Leases.Where(l => l.Name == lease).Select(l => l.Owner).SingleAsync());

    private Task<List<KnowledgeConnector>> ConnectorRowsAsync() =>
        _bed.Credits.QueryAsync(db => db.KnowledgeConnectors.AsNoTracking().ToListAsync());

    [Fact]
    public async Task A_connect_whose_setup_lease_was_taken_over_while_the_source_was_read_stores_no_connector_and_adds_no_page()
    {
        var (database, _) = NotionDatabase(1);
        var reads = 0;
        _bed.Notion.Observe = (message, _) =>
        {
            // The other replica now connecting may have checked for this source without seeing it: this connect must not store it too.
            if (message.Method == "POST" && message.Path == $"/v1/databases/{database}/query" && Interlocked.Increment(ref reads) == 1)
            {
                TakeOver(SetupLease);
            }
        };

        var (status, error) = await ConnectNotionAsync(database);

        Assert.Equal(1, reads);
        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, "connector_setup_in_progress");
        Assert.Empty(await ConnectorRowsAsync());
        Assert.Empty(await _bed.RowsAsync());
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Equal("another-replica", await LeaseOwnerAsync(SetupLease));
    }

    [Fact]
    public async Task A_connect_whose_new_connectors_lease_was_taken_over_while_its_page_was_uploaded_records_no_page_and_takes_it_out_of_ragflow()
    {
        var (database, _) = NotionDatabase(1);
        string? lease = null;
        _bed.Ragflow.Observe = (message, _) =>
        {
            if (message.Method == "POST" && message.Path == $"/api/v1/datasets/{_bed.DatasetId}/documents" && lease is null)
            {
                // The connector was stored under its own lease before its first page went up: another replica syncing it took that lease.
                lease = _bed.Credits.QueryAsync(db => db.Leases.Where(l => l.Name.StartsWith("knowledge-connector-sync:") && l.Owner != string.Empty).Select(l => l.Name).SingleAsync()).GetAwaiter().GetResult();
                TakeOver(lease);
            }
        };

        var (status, error) = await ConnectNotionAsync(database);

        Assert.NotNull(lease);
        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, "sync_in_progress");
        // The connector stays, never synced: it is the new holder's to sync, and that one adds the page.
        var connector = Assert.Single(await ConnectorRowsAsync());
        Assert.Equal(ConnectorService.SyncLeaseName(connector.Id), lease);
        Assert.Null(connector.LastSyncedAt);
        Assert.Empty(await _bed.RowsAsync());
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Equal("another-replica", await LeaseOwnerAsync(lease));
    }

    [Theory]
    [InlineData("setup")]
    [InlineData("sync")]
    public async Task A_connector_update_whose_lease_was_taken_over_while_the_new_settings_read_the_source_keeps_the_old_settings_and_pages(string taken)
    {
        var (database, _) = NotionDatabase(1);
        var (other, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = Guid.Parse(body["connector"]!["id"]!.GetValue<string>());
        var before = await ConnectorRowAsync(connector);
        var pages = RagflowIdsByName();
        var lease = taken == "setup" ? SetupLease : ConnectorService.SyncLeaseName(connector);
        var reads = 0;
        _bed.Notion.Observe = (message, _) =>
        {
            if (message.Method == "POST" && message.Path == $"/v1/databases/{other}/query" && Interlocked.Increment(ref reads) == 1)
            {
                TakeOver(lease);
            }
        };

        var (status, error) = await PatchAsync(connector.ToString(), new JsonObject { ["ids"] = new JsonArray(database, other) });

        Assert.Equal(1, reads);
        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, taken == "setup" ? "connector_setup_in_progress" : "sync_in_progress");
        var after = await ConnectorRowAsync(connector);
        Assert.Equal((before.ProtectedSettings, before.Description, before.UpdatedAt, before.LastSyncedAt), (after.ProtectedSettings, after.Description, after.UpdatedAt, after.LastSyncedAt));
        Assert.Equal(pages, RagflowIdsByName());
        Assert.Single(await _bed.RowsAsync());
        Assert.Equal("another-replica", await LeaseOwnerAsync(lease));
    }

    [Fact]
    public async Task A_connector_delete_whose_lease_was_taken_over_while_its_pages_left_ragflow_keeps_the_connector_and_the_page_records()
    {
        var (database, _) = NotionDatabase(2);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = Guid.Parse(body["connector"]!["id"]!.GetValue<string>());
        var lease = ConnectorService.SyncLeaseName(connector);
        var deletes = 0;
        _bed.Ragflow.Observe = (message, _) =>
        {
            if (message.Method == "DELETE" && message.Path == $"/api/v1/datasets/{_bed.DatasetId}/documents" && Interlocked.Increment(ref deletes) == 1)
            {
                TakeOver(lease);
            }
        };

        var (status, error) = await _bed.DeleteAsync($"/v1/knowledge/connectors/{connector}");

        // Each page leaves RAGFlow on its own call; the takeover after the first is found at the fenced save that follows.
        Assert.Equal(2, deletes);
        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, "sync_in_progress");
        // Nothing recorded changed: the new holder finds the connector and its pages as they were (pages gone from RAGFlow
        // are failed by the parse monitor and forgotten by a delete), and a delete once it is done finishes the job.
        Assert.Single(await ConnectorRowsAsync());
        Assert.Equal(2, (await _bed.RowsAsync()).Count(d => d.ConnectorId == connector));
        Assert.Equal("another-replica", await LeaseOwnerAsync(lease));
    }

    [Fact]
    public async Task Connector_credentials_are_stored_encrypted_and_never_shown()
    {
        var (database, _) = NotionDatabase(1);
        await ConnectNotionAsync(database);
        await ConnectConfluenceAsync();

        var stored = await _bed.Credits.QueryAsync(db => db.KnowledgeConnectors.AsNoTracking().Select(c => c.ProtectedSettings).ToListAsync());
        var (_, listed) = await _bed.GetAsync("/v1/knowledge/connectors");

        Assert.Equal(2, stored.Count);
        Assert.All(stored, s => Assert.DoesNotContain(NotionToken, s, StringComparison.Ordinal));
        Assert.All(stored, s => Assert.DoesNotContain(ConfluenceToken, s, StringComparison.Ordinal));
        Assert.Equal(["notion", "confluence"], listed["data"]!.AsArray().Select(c => c!["kind"]!.GetValue<string>()));
        Assert.DoesNotContain(NotionToken, listed.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(ConfluenceToken, listed.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_notion_token_is_a_clear_422_on_connect_and_on_sync_and_keeps_what_was_there()
    {
        var (database, _) = NotionDatabase(2);
        var (other, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = body["connector"]!["id"]!.GetValue<string>();

        _bed.Notion.ExpireToken(NotionToken);
        var (syncStatus, sync) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{connector}/sync", []);
        var (connectStatus, connect) = await ConnectNotionAsync(other);

        foreach (var (status, error) in new[] { (syncStatus, sync), (connectStatus, connect) })
        {
            Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
            KnowledgeTestBed.AssertError(error, "source_access_denied");
            Assert.Contains("Notion", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.DoesNotContain(NotionToken, error.ToJsonString(), StringComparison.Ordinal);
        }

        Assert.Equal(2, (await _bed.DocumentsAsync()).Count);
        Assert.DoesNotContain(_bed.Credits.Logs.Lines, line => line.Contains(NotionToken, StringComparison.Ordinal));
        var (_, connectors) = await _bed.GetAsync("/v1/knowledge/connectors");
        var only = Assert.Single(connectors["data"]!.AsArray())!;
        Assert.Contains("Notion", only["last_error"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connecting_confluence_pages_through_the_space_and_a_re_sync_replaces_only_the_edited_page()
    {
        var pages = Enumerable.Range(1, 3).Select(i => _bed.Confluence.AddPage("KB", $"Runbook {i}", $"<p>Step {i}</p>")).ToList();

        var (status, body) = await ConnectConfluenceAsync();

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(3, body["sync"]!["added"]!.GetValue<int>());
        Assert.True(_bed.Confluence.Count("GET", "/wiki/rest/api/content") >= 2, "the space is read in pages of 2");
        Assert.All(await _bed.DocumentsAsync(), d => Assert.Equal("confluence", d!["source"]!.GetValue<string>()));

        _bed.Confluence.EditPage(pages[2], "<p>Step 3, now with a rollback.</p>");
        var (_, sync) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{body["connector"]!["id"]}/sync", []);

        Assert.Equal(1, sync["sync"]!["replaced"]!.GetValue<int>());
        Assert.Equal(2, sync["sync"]!["unchanged"]!.GetValue<int>());
        Assert.Equal(3, _bed.Ragflow.Documents(_bed.DatasetId).Count);
    }

    [Fact]
    public async Task An_expired_confluence_token_is_a_clear_422_naming_confluence_and_not_the_token()
    {
        _bed.Confluence.AddPage("KB", "Runbook", "<p>Step</p>");
        var (_, body) = await ConnectConfluenceAsync();

        _bed.Confluence.ExpireToken(ConfluenceToken);
        var (status, error) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{body["connector"]!["id"]}/sync", []);

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        KnowledgeTestBed.AssertError(error, "source_access_denied");
        Assert.Contains("Confluence", error["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain(ConfluenceToken, error.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain(_bed.Credits.Logs.Lines, line => line.Contains(ConfluenceToken, StringComparison.Ordinal));
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
    }

    [Fact]
    public async Task Another_subscriptions_connector_cannot_be_synced()
    {
        var (database, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var (_, _, otherKey) = await _bed.AddSubscriptionAsync(credits: 10);

        var (status, error) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{body["connector"]!["id"]}/sync", [], otherKey);

        Assert.Equal(HttpStatusCode.NotFound, status);
        KnowledgeTestBed.AssertError(error, "connector_not_found");
    }

    [Fact]
    public async Task A_page_whose_document_left_ragflow_before_it_was_parsed_is_failed_uncharged_and_added_again_by_the_next_sync()
    {
        var (database, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var sync = $"/v1/knowledge/connectors/{body["connector"]!["id"]}/sync";
        var page = Assert.Single(await _bed.RowsAsync());

        // Gone from RAGFlow while parsing: deleted in RAGFlow's own console, or by a delete whose answer never came back.
        await DeleteInRagflowAsync(page.RagflowDocumentId);
        await _bed.PollAsync();

        var failed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("failed", 0L), (failed["status"]!.GetValue<string>(), failed["credits_charged"]!.GetValue<long>()));
        Assert.Contains("the connector's next sync adds it again", failed["error"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(100, await _bed.AvailableAsync());

        var (status, synced) = await _bed.PostJsonAsync(sync, []);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((0, 1, 0, 0), (synced["sync"]!["added"]!.GetValue<int>(), synced["sync"]!["replaced"]!.GetValue<int>(), synced["sync"]!["removed"]!.GetValue<int>(), synced["sync"]!["unchanged"]!.GetValue<int>()));
        var again = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((page.Name, page.ExternalId, page.SourceVersion), (again.Name, again.ExternalId, again.SourceVersion));
        Assert.Equal(again.RagflowDocumentId, Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>());
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        var listed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("done", 5L), (listed["status"]!.GetValue<string>(), listed["credits_charged"]!.GetValue<long>()));
        Assert.Equal(1, await _bed.RagChargesAsync());
    }

    [Fact]
    public async Task A_page_whose_parse_failed_is_added_again_by_the_next_sync_though_it_did_not_change()
    {
        var (database, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var sync = $"/v1/knowledge/connectors/{body["connector"]!["id"]}/sync";
        var page = Assert.Single(await _bed.RowsAsync());

        // The embedding provider was down: the parse failed, through no fault of the page.
        await _bed.PollAsync();
        _bed.Ragflow.FailParsing(_bed.DatasetId, "[ERROR]Embedding model error: 503 Service Unavailable");
        await _bed.PollAsync();
        Assert.Equal("failed", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());

        var (status, synced) = await _bed.PostJsonAsync(sync, []);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((0, 1, 0, 0), (synced["sync"]!["added"]!.GetValue<int>(), synced["sync"]!["replaced"]!.GetValue<int>(), synced["sync"]!["removed"]!.GetValue<int>(), synced["sync"]!["unchanged"]!.GetValue<int>()));
        var again = Assert.Single(await _bed.RowsAsync());
        Assert.NotEqual(page.RagflowDocumentId, again.RagflowDocumentId);
        Assert.Equal(page.SourceVersion, again.SourceVersion);
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        var listed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("done", 5L), (listed["status"]!.GetValue<string>(), listed["credits_charged"]!.GetValue<long>()));
        Assert.Equal(1, await _bed.RagChargesAsync());
    }

    private Task<(HttpStatusCode Status, JsonObject Body)> PatchAsync(string connector, JsonObject body, string? key = null) =>
        _bed.SendAsync(HttpMethod.Patch, $"/v1/knowledge/connectors/{connector}", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), key ?? _bed.Key);

    private Task<string> StoredSettingsAsync() =>
        _bed.Credits.QueryAsync(db => db.KnowledgeConnectors.AsNoTracking().Select(c => c.ProtectedSettings).SingleAsync());

    [Fact]
    public async Task A_renewed_notion_token_is_given_to_the_connector_and_its_pages_stay_without_being_added_or_charged_again()
    {
        const string Renewed = "secret_buyer_renewed_0123456789abcdefghijklmnopqrstuvwxyzAB";
        var (database, _) = NotionDatabase(2);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        var before = RagflowIdsByName();
        var credits = await _bed.AvailableAsync();
        _bed.Notion.RenewToken(NotionToken, Renewed);

        // Connecting the same database again would add and charge both pages a second time: it points at the connector.
        var (againStatus, again) = await ConnectNotionAsync(database);
        Assert.Equal(HttpStatusCode.Conflict, againStatus);
        KnowledgeTestBed.AssertError(again, "connector_exists");
        Assert.Contains($"PATCH /v1/knowledge/connectors/{connector}", again["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        var (status, updated) = await PatchAsync(connector, new JsonObject { ["integration_token"] = Renewed });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((0, 0, 0, 2), (updated["sync"]!["added"]!.GetValue<int>(), updated["sync"]!["replaced"]!.GetValue<int>(), updated["sync"]!["removed"]!.GetValue<int>(), updated["sync"]!["unchanged"]!.GetValue<int>()));
        Assert.Null(updated["connector"]!["last_error"]);
        Assert.Equal(before, RagflowIdsByName());
        Assert.Equal(credits, await _bed.AvailableAsync());
        Assert.Equal(2, await _bed.RagChargesAsync());
        var stored = await StoredSettingsAsync();
        Assert.DoesNotContain(Renewed, stored, StringComparison.Ordinal);
        Assert.DoesNotContain(Renewed, updated.ToJsonString(), StringComparison.Ordinal);

        // The next sync reads with the renewed token.
        var (syncStatus, _) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{connector}/sync", []);
        Assert.Equal(HttpStatusCode.OK, syncStatus);
        Assert.DoesNotContain(_bed.Credits.Logs.Lines, line => line.Contains(Renewed, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_connector_update_that_cannot_read_the_source_is_refused_and_the_old_settings_are_kept()
    {
        var (database, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var stored = await StoredSettingsAsync();

        var (status, error) = await PatchAsync(connector, new JsonObject { ["integration_token"] = "secret_nobody_knows_this_one_0123456789abcdefghijklmnopq" });

        Assert.Equal(HttpStatusCode.UnprocessableEntity, status);
        KnowledgeTestBed.AssertError(error, "source_access_denied");
        Assert.Equal(stored, await StoredSettingsAsync());
        var (syncStatus, _) = await _bed.PostJsonAsync($"/v1/knowledge/connectors/{connector}/sync", []);
        Assert.Equal(HttpStatusCode.OK, syncStatus);
        Assert.Single(await _bed.DocumentsAsync());
    }

    [Fact]
    public async Task A_connector_update_with_no_change_a_blank_value_another_kinds_field_or_an_unknown_field_is_a_400_that_changes_nothing()
    {
        var (database, _) = NotionDatabase(1);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var stored = await StoredSettingsAsync();

        foreach (var (change, param) in new (JsonObject, string?)[]
        {
            ([], null),
            (new JsonObject { ["integration_token"] = " " }, "integration_token"),
            (new JsonObject { ["ids"] = new JsonArray() }, "ids"),
            (new JsonObject { ["api_token"] = ConfluenceToken }, "api_token"),
            (new JsonObject { ["integration_token"] = NotionToken, ["token"] = "x" }, "token"),
        })
        {
            var (status, error) = await PatchAsync(connector, change);

            Assert.Equal(HttpStatusCode.BadRequest, status);
            Assert.Equal("invalid_request_error", error["error"]!["type"]!.GetValue<string>());
            if (param is not null)
            {
                Assert.Equal(param, error["error"]!["param"]!.GetValue<string>());
            }
        }

        Assert.Equal(stored, await StoredSettingsAsync());
        Assert.Equal(1, _bed.Notion.Count("POST", $"/v1/databases/{database}/query"));
    }

    [Fact]
    public async Task While_a_connector_of_the_knowledge_base_is_being_connected_another_connect_is_a_409_and_reads_nothing()
    {
        var (database, _) = NotionDatabase(1);
        var leases = _bed.Server.Services.GetRequiredService<DatabaseLeases>();
        // A connect of this subscription in progress on another replica (a client retrying one that seemed slow).
        Assert.NotNull(await leases.TryAcquireWaitingAsync($"knowledge-connector-setup:{_bed.Subscription.Id:N}", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None));

        var (status, error) = await ConnectNotionAsync(database);

        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, "connector_setup_in_progress");
        Assert.Equal(0, _bed.Notion.Count("POST", $"/v1/databases/{database}/query"));
        Assert.Empty(await _bed.DocumentsAsync());
    }

    [Fact]
    public async Task Changing_a_connector_onto_a_source_another_connector_reads_is_a_409_or_while_a_connect_is_under_way()
    {
        var (first, _) = NotionDatabase(1);
        var (second, _) = NotionDatabase(1);
        await ConnectNotionAsync(first);
        var (_, body) = await ConnectNotionAsync(second);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var stored = await _bed.Credits.QueryAsync(db => db.KnowledgeConnectors.AsNoTracking().Where(c => c.Id == Guid.Parse(connector)).Select(c => c.ProtectedSettings).SingleAsync());

        var (status, error) = await PatchAsync(connector, new JsonObject { ["ids"] = new JsonArray(first) });

        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(error, "connector_exists");
        var leases = _bed.Server.Services.GetRequiredService<DatabaseLeases>();
        Assert.NotNull(await leases.TryAcquireWaitingAsync($"knowledge-connector-setup:{_bed.Subscription.Id:N}", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None));
        var (busyStatus, busy) = await PatchAsync(connector, new JsonObject { ["integration_token"] = NotionToken });
        Assert.Equal(HttpStatusCode.Conflict, busyStatus);
        KnowledgeTestBed.AssertError(busy, "connector_setup_in_progress");
        Assert.Equal(stored, await _bed.Credits.QueryAsync(db => db.KnowledgeConnectors.AsNoTracking().Where(c => c.Id == Guid.Parse(connector)).Select(c => c.ProtectedSettings).SingleAsync()));
        Assert.Equal(2, (await _bed.DocumentsAsync()).Count);
    }

    [Fact]
    public async Task A_new_confluence_site_needs_its_own_account_in_the_same_request_so_the_stored_token_goes_nowhere_else()
    {
        _bed.Confluence.AddPage("KB", "Runbook", "<p>Step</p>");
        var (_, body) = await ConnectConfluenceAsync();
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var stored = await StoredSettingsAsync();
        var before = _bed.Confluence.Upstream.Requests.Count();

        var (status, error) = await PatchAsync(connector, new JsonObject { ["site_url"] = "https://collector.example.net" });

        Assert.Equal(HttpStatusCode.BadRequest, status);
        KnowledgeTestBed.AssertError(error, "invalid_request");
        Assert.Equal("email", error["error"]!["param"]!.GetValue<string>());
        Assert.Equal(stored, await StoredSettingsAsync());
        Assert.Equal(before, _bed.Confluence.Upstream.Requests.Count());
    }

    [Fact]
    public async Task Moving_a_confluence_connector_to_another_space_removes_the_old_spaces_pages_and_adds_the_new_ones()
    {
        _bed.Confluence.AddSpace("OPS", "Operations", Email);
        _bed.Confluence.AddPage("KB", "Runbook", "<p>Step</p>");
        _bed.Confluence.AddPage("OPS", "On-call", "<p>Page the owner.</p>");
        _bed.Confluence.AddPage("OPS", "Escalation", "<p>Then the manager.</p>");
        var (_, body) = await ConnectConfluenceAsync();
        var connector = body["connector"]!["id"]!.GetValue<string>();

        var (status, moved) = await PatchAsync(connector, new JsonObject { ["space_key"] = "OPS" });

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((2, 1), (moved["sync"]!["added"]!.GetValue<int>(), moved["sync"]!["removed"]!.GetValue<int>()));
        Assert.Contains("space OPS", moved["connector"]!["description"]!.GetValue<string>(), StringComparison.Ordinal);
        var names = RagflowIdsByName().Keys.ToList();
        Assert.Equal(2, names.Count);
        Assert.DoesNotContain(names, n => n.Contains("runbook", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Deleting_a_connector_removes_its_pages_from_ragflow_and_gives_back_the_holds_of_unparsed_ones()
    {
        var (database, _) = NotionDatabase(2);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        await _bed.UploadAsync(("faq.txt", "Questions."));

        var (status, deleted) = await _bed.DeleteAsync($"/v1/knowledge/connectors/{connector}");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((true, 2), (deleted["deleted"]!.GetValue<bool>(), deleted["documents_removed"]!.GetValue<int>()));
        Assert.Equal("faq.txt", Assert.Single(await _bed.DocumentsAsync())!["name"]!.GetValue<string>());
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Empty((await _bed.GetAsync("/v1/knowledge/connectors")).Body["data"]!.AsArray());
        // Only the uploaded file's parse is still held.
        Assert.Equal(95, await _bed.AvailableAsync());
        var (againStatus, again) = await _bed.DeleteAsync($"/v1/knowledge/connectors/{connector}");
        Assert.Equal(HttpStatusCode.NotFound, againStatus);
        KnowledgeTestBed.AssertError(again, "connector_not_found");

        // The database can be connected afresh now.
        var (connectStatus, _) = await ConnectNotionAsync(database);
        Assert.Equal(HttpStatusCode.Created, connectStatus);
    }

    [Fact]
    public async Task Deleting_a_connector_keeping_its_documents_leaves_them_as_documents_no_longer_synced()
    {
        var (database, _) = NotionDatabase(2);
        var (_, body) = await ConnectNotionAsync(database);
        var connector = body["connector"]!["id"]!.GetValue<string>();
        var (_, _, otherKey) = await _bed.AddSubscriptionAsync(credits: 10);

        var (otherStatus, other) = await _bed.DeleteAsync($"/v1/knowledge/connectors/{connector}", otherKey);
        var (badStatus, bad) = await _bed.DeleteAsync($"/v1/knowledge/connectors/{connector}?keep_documents=perhaps");
        Assert.Equal((HttpStatusCode.NotFound, HttpStatusCode.BadRequest), (otherStatus, badStatus));
        KnowledgeTestBed.AssertError(other, "connector_not_found");
        KnowledgeTestBed.AssertError(bad, "invalid_request");
        Assert.Single((await _bed.GetAsync("/v1/knowledge/connectors")).Body["data"]!.AsArray());

        var (status, deleted) = await _bed.DeleteAsync($"/v1/knowledge/connectors/{connector}?keep_documents=true");

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(0, deleted["documents_removed"]!.GetValue<int>());
        var documents = await _bed.DocumentsAsync();
        Assert.Equal(2, documents.Count);
        Assert.All(documents, d => Assert.Null(d!["connector_id"]));
        Assert.Equal(2, _bed.Ragflow.Documents(_bed.DatasetId).Count);
        Assert.Empty((await _bed.GetAsync("/v1/knowledge/connectors")).Body["data"]!.AsArray());
    }

    /// <summary>Deletes a document through RAGFlow's API, as anyone holding the operator's key can.</summary>
    private async Task DeleteInRagflowAsync(string ragflowDocumentId)
    {
        using var http = new HttpClient { BaseAddress = _bed.Ragflow.Url };
        using var request = new HttpRequestMessage(HttpMethod.Delete, $"api/v1/datasets/{_bed.DatasetId}/documents")
        {
            Content = new StringContent(new JsonObject { ["ids"] = new JsonArray(ragflowDocumentId) }.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", RagflowFake.ApiKey);
        using var answer = await http.SendAsync(request);
        Assert.Equal(0, JsonNode.Parse(await answer.Content.ReadAsStringAsync())!["code"]!.GetValue<int>());
    }
}

public sealed class KnowledgeConnectorOnSqliteTests() : KnowledgeConnectorTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeConnectorOnPostgresTests() : KnowledgeConnectorTests(DatabaseProvider.Postgres);
