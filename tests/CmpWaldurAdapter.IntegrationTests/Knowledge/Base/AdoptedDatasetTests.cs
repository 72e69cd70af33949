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

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync();

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

    private Task<Dictionary<string, KnowledgeDocument>> RowsAsync(Subscriber subscriber) =>
        _bed.Tenants.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking()
            .Where(d => d.SubscriptionId == subscriber.Subscription.Id)
            .ToDictionaryAsync(d => d.RagflowDocumentId));
}
