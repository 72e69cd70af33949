using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Knowledge.Documents;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// A subscription provisioned again after the adapter's database was lost finds its dataset in RAGFlow, with
/// documents the new database has no record of. Adopting the dataset records them: the buyer sees them listed,
/// chat searches and cites them at once, and nothing is charged for them again.
/// </summary>
public sealed class AdoptedDatasetTests : IAsyncLifetime
{
    private const string Refunds = "Refunds are paid within 30 days.";
    private const string FailedLog = "10:00:00 Task has been received.\n10:00:09 [ERROR]Embedding model rate limit exceeded";

    private ChatTestBed _bed = null!;

    // Polls run when a test calls them: a poll in the background would start or charge documents between its checks.
    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync(settings => settings["Knowledge:PollInterval"] = "01:00:00");

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_adopted_datasets_documents_are_listed_searched_and_cited_at_once_and_only_unfinished_parses_are_charged()
    {
        var ragflow = _bed.Tenants.Ragflow;
        var attributes = TenantTestBed.Attributes();
        attributes["citations"] = true;
        string dataset = null!, refunds = null!, manual = null!, broken = null!;
        var me = await _bed.SubscribeAsync(credits: 100, attributes, knowledge: false, beforeProvisioning: resource =>
        {
            dataset = ragflow.AddDataset($"cmp-{resource:N}");
            refunds = ragflow.AddDocument(dataset, "refunds.md", Refunds);
            manual = ragflow.AddDocument(dataset, "manual.md", "Setup takes five minutes.", run: "RUNNING", progress: 0.4);
            broken = ragflow.AddDocument(dataset, "broken.md", "?", run: "FAIL", progress: -1, progressLog: FailedLog);
        });

        // The dataset was adopted, and each of its documents recorded as RAGFlow reports it; only the done one was paid for.
        Assert.Equal(dataset, me.Subscription.RagflowDatasetId);
        var rows = await RowsAsync(me);
        Assert.Equal(new[] { refunds, manual, broken }.Order(), rows.Keys.Order());
        Assert.Equal(("refunds.md", ParseStates.Done, 1d, (long)Encoding.UTF8.GetByteCount(Refunds)), (rows[refunds].Name, rows[refunds].Status, rows[refunds].Progress, rows[refunds].SizeBytes));
        Assert.Equal(("manual.md", ParseStates.Running, 0.4), (rows[manual].Name, rows[manual].Status, rows[manual].Progress));
        Assert.Equal(("broken.md", ParseStates.Fail, "10:00:09 [ERROR]Embedding model rate limit exceeded"), (rows[broken].Name, rows[broken].Status, rows[broken].Error));
        Assert.NotNull(rows[refunds].ChargedAt);
        Assert.Null(rows[manual].ChargedAt);
        Assert.Null(rows[broken].ChargedAt);
        Assert.All(rows.Values, row => Assert.Equal((0L, (Guid?)null), (row.CreditsCharged, row.CreditReservationId)));

        // Listed for the buyer.
        using var http = _bed.Http(me.Key);
        var listed = JsonNode.Parse(await http.GetStringAsync("/v1/knowledge/documents"))!["data"]!.AsArray();
        Assert.Equal(
            ["broken.md failed", "manual.md parsing", "refunds.md done"],
            listed.Select(d => $"{d!["name"]!.GetValue<string>()} {d["status"]!.GetValue<string>()}").Order());

        // Searched and cited by chat: the knowledge base counts as holding documents at once.
        using var answer = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"messages": [{"role": "user", "content": "How do refunds work?"}]}"""));
        var text = await answer.Content.ReadAsStringAsync();
        Assert.True(answer.StatusCode == HttpStatusCode.OK, text);
        Assert.EndsWith("\n\nSources: refunds.md", JsonNode.Parse(text)!["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal([dataset], Assert.Single(ragflow.Retrievals).DatasetIds);

        // The parse that was running is followed to its end and charged once, as it would have been; the done
        // document is not charged again; nothing was parsed again.
        ragflow.FinishParsing(dataset);
        var monitor = _bed.Services.GetRequiredService<ParseMonitor>();
        await monitor.PollAsync(CancellationToken.None);
        await monitor.PollAsync(CancellationToken.None);
        var finished = (await RowsAsync(me))[manual];
        Assert.Equal(ParseStates.Done, finished.Status);
        Assert.NotNull(finished.ChargedAt);
        Assert.True(finished.CreditsCharged > 0);
        Assert.All(new[] { refunds, manual, broken }, id => Assert.Equal(0, ragflow.ParseRequests(id)));
        var parseCharge = Assert.Single(await _bed.Tenants.QueryAsync(db => db.LedgerEntries.AsNoTracking()
            .Where(e => e.SubscriptionId == me.Subscription.Id && e.Component == "rag_credits").ToListAsync()));
        Assert.Equal(($"doc:{manual}", finished.CreditsCharged), (parseCharge.RequestId, parseCharge.Credits));
        var ledger = await _bed.LedgerAsync(me.Customer);
        Assert.Equal((2, 0L), (ledger.Charges, ledger.Reserved)); // the chat message and the finished parse
    }

    [Fact]
    public async Task An_adopted_document_never_parsed_is_parsed_and_charged_once_done_and_a_cancelled_one_is_left_stopped_and_free()
    {
        var ragflow = _bed.Tenants.Ragflow;
        string dataset = null!, pending = null!, stopped = null!;
        var me = await _bed.SubscribeAsync(credits: 100, knowledge: false, beforeProvisioning: resource =>
        {
            dataset = ragflow.AddDataset($"cmp-{resource:N}");
            pending = ragflow.AddDocument(dataset, "pending.md", "Uploaded, never parsed.", run: "UNSTART");
            stopped = ragflow.AddDocument(dataset, "stopped.md", "Its parse was stopped.", run: "CANCEL");
        });
        using var http = _bed.Http(me.Key);

        // Recorded as RAGFlow reports them; neither was paid for, and neither holds credits.
        var rows = await RowsAsync(me);
        Assert.Equal(new[] { pending, stopped }.Order(), rows.Keys.Order());
        Assert.Equal((ParseStates.Unstart, 0, (string?)null), (rows[pending].Status, rows[pending].ParseAttempts, rows[pending].Error));
        Assert.Equal((ParseStates.Cancel, "Parsing was stopped in the knowledge base."), (rows[stopped].Status, rows[stopped].Error));
        Assert.All(rows.Values, row => Assert.Equal(((DateTimeOffset?)null, 0L, (Guid?)null), (row.ChargedAt, row.CreditsCharged, row.CreditReservationId)));
        Assert.Equal(["pending.md pending", "stopped.md cancelled"], Described(await ListedAsync(http)));
        var before = await _bed.LedgerAsync(me.Customer);
        Assert.Equal((0, 0L), (before.Charges, before.Reserved));

        // The next poll starts the one never parsed (without a hold: it is charged when done); the stopped one stays stopped.
        var monitor = _bed.Services.GetRequiredService<ParseMonitor>();
        await monitor.PollAsync(CancellationToken.None);
        Assert.Equal((1, 0), (ragflow.ParseRequests(pending), ragflow.ParseRequests(stopped)));
        Assert.Equal(["pending.md parsing", "stopped.md cancelled"], Described(await ListedAsync(http)));

        ragflow.FinishParsing(dataset);
        await monitor.PollAsync(CancellationToken.None);
        await monitor.PollAsync(CancellationToken.None);

        rows = await RowsAsync(me);
        Assert.Equal((ParseStates.Done, 5L, (Guid?)null), (rows[pending].Status, rows[pending].CreditsCharged, rows[pending].CreditReservationId));
        Assert.NotNull(rows[pending].ChargedAt);
        Assert.Equal((ParseStates.Cancel, (DateTimeOffset?)null, 0L), (rows[stopped].Status, rows[stopped].ChargedAt, rows[stopped].CreditsCharged));
        Assert.Equal(["pending.md done", "stopped.md cancelled"], Described(await ListedAsync(http)));
        Assert.Equal((1, 0), (ragflow.ParseRequests(pending), ragflow.ParseRequests(stopped)));
        var charge = Assert.Single(await _bed.Tenants.QueryAsync(db => db.LedgerEntries.AsNoTracking()
            .Where(e => e.SubscriptionId == me.Subscription.Id && e.Component == "rag_credits").ToListAsync()));
        Assert.Equal(($"doc:{pending}", 5L), (charge.RequestId, charge.Credits));
        var ledger = await _bed.LedgerAsync(me.Customer);
        Assert.Equal((1, 0L), (ledger.Charges, ledger.Reserved));
    }

    [Fact]
    public async Task Documents_ragflow_lists_under_another_dataset_are_not_recorded_listed_charged_or_parsed()
    {
        var ragflow = _bed.Tenants.Ragflow;
        string dataset = null!, ours = null!, neighbour = null!, theirs = null!, theirsToo = null!;
        var me = await _bed.SubscribeAsync(credits: 100, knowledge: false, beforeProvisioning: resource =>
        {
            dataset = ragflow.AddDataset($"cmp-{resource:N}");
            ours = ragflow.AddDocument(dataset, "ours.md", "This buyer's.");
            neighbour = ragflow.AddDataset($"cmp-{Guid.NewGuid():N}");
            theirs = ragflow.AddDocument(neighbour, "theirs.md", "Another buyer's, parsing.", run: "RUNNING");
            theirsToo = ragflow.AddDocument(neighbour, "theirs-too.md", "Another buyer's, never parsed.", run: "UNSTART");
            // The listing of this buyer's dataset names the neighbour's documents too: one by dataset_id, one by
            // the knowledgebase_id the API reference names it.
            var listed = ragflow.Documents(dataset).Concat(ragflow.Documents(neighbour)).ToArray();
            var byReferenceName = listed.Single(d => d["id"]!.GetValue<string>() == theirsToo);
            byReferenceName.Remove("dataset_id");
            byReferenceName["knowledgebase_id"] = neighbour;
            ragflow.Fail("GET", $"/api/v1/datasets/{dataset}/documents", 200, body: Listing(listed));
        });
        using var http = _bed.Http(me.Key);

        // Only this dataset's document is recorded and listed.
        var row = Assert.Single((await RowsAsync(me)).Values);
        Assert.Equal((ours, ParseStates.Done, 0L), (row.RagflowDocumentId, row.Status, row.CreditsCharged));
        Assert.Equal(["ours.md done"], Described(await ListedAsync(http)));

        // The neighbour's parses end; nothing of theirs is charged to this buyer, parsed, or taken out of their dataset.
        var monitor = _bed.Services.GetRequiredService<ParseMonitor>();
        await monitor.PollAsync(CancellationToken.None);
        ragflow.FinishParsing(neighbour);
        await monitor.PollAsync(CancellationToken.None);

        Assert.Equal([ours], (await RowsAsync(me)).Keys);
        Assert.Equal(["ours.md done"], Described(await ListedAsync(http)));
        var ledger = await _bed.LedgerAsync(me.Customer);
        Assert.Equal((0, 0L), (ledger.Charges, ledger.Reserved));
        Assert.Equal(0, await _bed.Tenants.QueryAsync(db => db.KnowledgeDocuments.CountAsync(d => d.RagflowDocumentId == theirs || d.RagflowDocumentId == theirsToo)));
        Assert.All(new[] { ours, theirs, theirsToo }, id => Assert.Equal(0, ragflow.ParseRequests(id)));
        Assert.Equal(new[] { theirs, theirsToo }.Order(), ragflow.Documents(neighbour).Select(d => d["id"]!.GetValue<string>()).Order());
    }

    [Fact]
    public async Task A_document_in_a_run_state_the_adapter_does_not_know_is_followed_as_parsing_and_charged_once_ragflow_reports_it_done()
    {
        var ragflow = _bed.Tenants.Ragflow;
        string dataset = null!, scheduled = null!;
        var me = await _bed.SubscribeAsync(credits: 100, knowledge: false, beforeProvisioning: resource =>
        {
            dataset = ragflow.AddDataset($"cmp-{resource:N}");
            // A state this version does not know (a later RAGFlow's, say).
            scheduled = ragflow.AddDocument(dataset, "scheduled.md", "Waiting for the connector's schedule.", run: "7");
        });
        var monitor = _bed.Services.GetRequiredService<ParseMonitor>();
        using var http = _bed.Http(me.Key);

        // Recorded and followed as a parse still running: not charged, not failed, not sent to parse, however often polled.
        for (var poll = 0; poll < 3; poll++)
        {
            var row = Assert.Single((await RowsAsync(me)).Values);
            Assert.Equal((scheduled, ParseStates.Running, (DateTimeOffset?)null, (string?)null), (row.RagflowDocumentId, row.Status, row.ChargedAt, row.Error));
            Assert.Equal("parsing", Assert.Single(await ListedAsync(http))!["status"]!.GetValue<string>());
            await monitor.PollAsync(CancellationToken.None);
        }

        Assert.Equal(0, ragflow.ParseRequests(scheduled));
        Assert.Equal(0, (await _bed.LedgerAsync(me.Customer)).Charges);

        // Still polled: once RAGFlow reports it done, it is charged, once.
        var done = Assert.Single(ragflow.Documents(dataset));
        (done["run"], done["progress"]) = ("DONE", 1.0);
        ragflow.Fail("GET", $"/api/v1/datasets/{dataset}/documents", 200, body: Listing(done));
        await monitor.PollAsync(CancellationToken.None);
        await monitor.PollAsync(CancellationToken.None);

        var charged = Assert.Single((await RowsAsync(me)).Values);
        Assert.Equal((ParseStates.Done, 5L), (charged.Status, charged.CreditsCharged));
        Assert.Equal("done", Assert.Single(await ListedAsync(http))!["status"]!.GetValue<string>());
        var ledger = await _bed.LedgerAsync(me.Customer);
        Assert.Equal((1, 5L, 0L), (ledger.Charges, ledger.Charged, ledger.Reserved));
        Assert.Equal(0, ragflow.ParseRequests(scheduled));
    }

    /// <summary>RAGFlow's answer to listing a dataset's documents: one page holding <paramref name="docs"/>.</summary>
    private static string Listing(params JsonObject[] docs) => new JsonObject
    {
        ["code"] = 0,
        ["message"] = "success",
        ["data"] = new JsonObject { ["total"] = docs.Length, ["docs"] = new JsonArray(docs.Select(d => (JsonNode)d.DeepClone()).ToArray()) },
    }.ToJsonString();

    /// <summary>The listed documents as "name status", in name order.</summary>
    private static string[] Described(JsonArray listed) =>
        [.. listed.Select(d => $"{d!["name"]!.GetValue<string>()} {d["status"]!.GetValue<string>()}").Order(StringComparer.Ordinal)];

    private static async Task<JsonArray> ListedAsync(HttpClient http) =>
        JsonNode.Parse(await http.GetStringAsync("/v1/knowledge/documents"))!["data"]!.AsArray();

    private Task<Dictionary<string, KnowledgeDocument>> RowsAsync(Subscriber subscriber) =>
        _bed.Tenants.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking()
            .Where(d => d.SubscriptionId == subscriber.Subscription.Id)
            .ToDictionaryAsync(d => d.RagflowDocumentId));
}
