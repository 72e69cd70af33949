using System.Net;
using System.Text;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Knowledge.Connectors;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

public sealed class KnowledgeTerminationOnSqliteTests() : KnowledgeTerminationTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeTerminationOnPostgresTests() : KnowledgeTerminationTests(DatabaseProvider.Postgres);

/// <summary>
/// A subscription terminated while documents are parsing, through a real Terminate order against the Langflow and
/// RAGFlow fakes: the knowledge base's removal closes every parse first, so nothing waits for a hold to expire.
/// </summary>
public abstract class KnowledgeTerminationTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string NotionToken = "secret_buyer_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";

    private readonly NotionFake _notion = new();
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync(provider);
        _bed.Settings["Knowledge:Notion:BaseUrl"] = _notion.Url.ToString();
        _bed.Settings["Knowledge:Notion:RetryAttempts"] = "1";
        _bed.Settings["Knowledge:Notion:RetryDelay"] = "00:00:00.010";
        // A server started by a test polls only when the test says so.
        _bed.Settings["Knowledge:PollInterval"] = "01:00:00";
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync()
    {
        try
        {
            await _bed.DisposeAsync();
        }
        finally
        {
            _notion.Dispose();
        }
    }

    [Fact]
    public async Task Terminating_charges_a_parse_done_since_the_last_poll_once_and_reports_it_and_gives_back_a_running_ones_hold_at_once()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        var done = await UploadAsync(subscription.Id, "done.txt");
        _bed.Ragflow.FinishParsing(subscription.RagflowDatasetId!); // done in RAGFlow, not yet seen by a poll
        var running = await UploadAsync(subscription.Id, "running.txt");
        Assert.Equal(90, (await ledger.BalanceAsync(subscription.CustomerId)).Available);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        Assert.Empty(_bed.Ragflow.Datasets);
        var rows = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscription.Id).ToDictionaryAsync(d => d.Name));
        Assert.Equal((ParseStates.Done, true, 5L), (rows["done.txt"].Status, rows["done.txt"].ChargedAt is not null, rows["done.txt"].CreditsCharged));
        Assert.Equal((ParseStates.Cancel, (DateTimeOffset?)null, (Guid?)null), (rows["running.txt"].Status, rows["running.txt"].ChargedAt, rows["running.txt"].CreditReservationId));
        Assert.Contains("The subscription ended before parsing finished", rows["running.txt"].Error, StringComparison.Ordinal);

        // Charged once, from its hold; the running one's hold is given back now, not when it would expire.
        var entries = await _bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.SubscriptionId == subscription.Id && e.Component == "rag_credits").ToListAsync());
        var charge = Assert.Single(entries, e => e.Kind == LedgerEntryKind.Charge);
        Assert.Equal((5L, done.CreditReservationId), (charge.Credits, charge.ReservationId));
        Assert.Equal(running.CreditReservationId, Assert.Single(entries, e => e.Kind == LedgerEntryKind.Release).ReservationId);
        Assert.Equal(0, await _bed.QueryAsync(db => db.CreditReservations.CountAsync()));
        var balance = await ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((95L, 0L), (balance.Balance, balance.Reserved));

        // The final usage report, the order's last step, includes the charge.
        var usage = Assert.Single(_bed.Waldur.Usages, u => u["type"]!.GetValue<string>() == "rag_credits");
        Assert.Equal("5.00", usage["usage"]!.GetValue<string>());

        // Nothing is left for the poll, which charges nothing more.
        Assert.Equal(0, await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None));
        Assert.Single(await _bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.SubscriptionId == subscription.Id && e.Kind == LedgerEntryKind.Charge).ToListAsync()));
    }

    [Fact]
    public async Task Terminating_charges_a_parse_done_after_its_hold_expired_directly_once_and_reports_it()
    {
        var (resource, subscription, _, late) = await ParseDoneAfterItsHoldExpiredAsync();

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        // Charged directly, as the poll would have, under the document's own request id.
        var charge = await AssertChargedOnceAsync(subscription.Id, subscription.CustomerId, late.Id);
        Assert.Equal(((Guid?)null, ParseMonitor.ChargeRequestId(late.RagflowDocumentId)), (charge.ReservationId, charge.RequestId));

        Assert.Equal(0, await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None));
        Assert.Single(await ChargesAsync(subscription.Id));
    }

    [Fact]
    public async Task Terminating_while_a_parse_done_cannot_be_priced_is_retried_and_charges_it_once_later_instead_of_cancelling_it()
    {
        var (resource, subscription, _, late) = await ParseDoneAfterItsHoldExpiredAsync();
        // The offering's price book cannot be read for now (its catalogue entry is missing after a configuration change).
        var configuration = (IConfigurationRoot)_bed.Services.GetRequiredService<IConfiguration>();
        configuration["Offerings:0:Slug"] = "not-in-the-catalogue";
        configuration.Reload();

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(terminate, CancellationToken.None));

        // The removal waits: the dataset and the pending document stay, nothing is charged or cancelled.
        Assert.Equal("executing", _bed.Waldur.OrderState(terminate));
        Assert.Single(_bed.Ragflow.Datasets);
        var waiting = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().SingleAsync(d => d.Id == late.Id));
        Assert.Equal((ParseStates.Running, (DateTimeOffset?)null), (waiting.Status, waiting.ChargedAt));
        Assert.Empty(await ChargesAsync(subscription.Id));

        configuration["Offerings:0:Slug"] = TenantTestBed.Slug;
        configuration.Reload();
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        Assert.Empty(_bed.Ragflow.Datasets);
        var charge = await AssertChargedOnceAsync(subscription.Id, subscription.CustomerId, late.Id);
        Assert.Equal(ParseMonitor.ChargeRequestId(late.RagflowDocumentId), charge.RequestId);
    }

    [Fact]
    public async Task Terminating_while_waldur_funding_cannot_be_read_is_retried_and_charges_a_parse_done_once_later_instead_of_cancelling_it()
    {
        // Waldur funds the organization and has never been asked how much: its only document came with an adopted
        // dataset, still parsing, so it was recorded without a hold, to be charged once its parse is done.
        var configuration = (IConfigurationRoot)_bed.Services.GetRequiredService<IConfiguration>();
        configuration["Credits:Funding"] = "WaldurCustomerCredits";
        configuration["Credits:CreditPrice"] = "0.01";
        configuration.Reload();
        var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(create);
        var dataset = _bed.Ragflow.AddDataset($"cmp-{resource:N}");
        var ragflowId = _bed.Ragflow.AddDocument(dataset, "adopted.md", "Parsing when the records were lost.", run: "RUNNING");
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(create)).Outcome);
        var subscription = await _bed.SubscriptionAsync(resource);
        var adopted = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().SingleAsync(d => d.RagflowDocumentId == ragflowId));
        _bed.Ragflow.FinishParsing(dataset);
        _bed.Waldur.Break("GET", "/api/customer-credits/", 503);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(terminate, CancellationToken.None));

        // The removal waits: the dataset and the pending document stay, nothing is charged or cancelled.
        Assert.Equal("executing", _bed.Waldur.OrderState(terminate));
        Assert.Single(_bed.Ragflow.Datasets);
        var waiting = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().SingleAsync(d => d.Id == adopted.Id));
        Assert.Equal((ParseStates.Running, (DateTimeOffset?)null), (waiting.Status, waiting.ChargedAt));
        Assert.Empty(await ChargesAsync(subscription.Id));

        _bed.Waldur.Heal();
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.00m);
        // Not the second it waits after a failed first read before asking Waldur again.
        _bed.Services.GetRequiredService<WaldurFunding>().Invalidate(subscription.CustomerId);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        Assert.Empty(_bed.Ragflow.Datasets);
        var charge = await AssertChargedOnceAsync(subscription.Id, subscription.CustomerId, adopted.Id);
        Assert.Equal(ParseMonitor.ChargeRequestId(ragflowId), charge.RequestId);
    }

    [Fact]
    public async Task Terminating_after_the_dataset_left_ragflow_reads_its_documents_once_not_once_more_per_pending_document()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        var first = await UploadAsync(subscription.Id, "first.txt");
        var second = await UploadAsync(subscription.Id, "second.txt");
        var dataset = subscription.RagflowDatasetId!;
        // Deleted in RAGFlow behind the adapter's back, the parses with it.
        await _bed.Services.GetRequiredService<IRagflowApi>().DeleteDatasetsAsync(new DeleteByIdsRequest { Ids = [dataset] }, CancellationToken.None);
        var documentReadsBefore = _bed.Ragflow.Count("GET", $"/api/v1/datasets/{dataset}/documents");

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        // One list, answered "you don't own the dataset"; no document is then asked for by id.
        Assert.Equal(documentReadsBefore + 1, _bed.Ragflow.Count("GET", $"/api/v1/datasets/{dataset}/documents"));
        var rows = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscription.Id).ToListAsync());
        Assert.Equal(new[] { first.Id, second.Id }.Order(), rows.Select(r => r.Id).Order());
        Assert.All(rows, row => Assert.Equal((ParseStates.Cancel, (DateTimeOffset?)null, (Guid?)null), (row.Status, row.ChargedAt, row.CreditReservationId)));
        var balance = await ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((100L, 0L), (balance.Balance, balance.Reserved));
    }

    [Fact]
    public async Task Terminating_does_not_charge_again_a_parse_charged_directly_but_not_yet_recorded()
    {
        var (resource, subscription, ledger, late) = await ParseDoneAfterItsHoldExpiredAsync();
        // A poll charged it directly and stopped before recording that: the ledger has the charge, the record does not.
        var knowledge = _bed.Services.GetRequiredService<KnowledgeBase>();
        var price = knowledge.Price(await knowledge.TenantAsync(subscription.Id, forWrite: false, CancellationToken.None));
        var earlier = await ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.RagDocument, price.Credits, price.PriceBookVersion, ParseMonitor.ChargeRequestId(late.RagflowDocumentId));
        Assert.Equal(ChargeStatus.Charged, earlier.Status);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        Assert.Equal(earlier.EntryId, (await AssertChargedOnceAsync(subscription.Id, subscription.CustomerId, late.Id)).Id);
    }

    [Fact]
    public async Task A_document_recorded_after_its_subscription_was_terminated_gives_its_hold_back_at_the_next_poll()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        var late = await UploadAsync(subscription.Id, "late.txt");
        // An upload still running when the termination began: its record is saved after the removal closed the others.
        await _bed.QueryAsync(db => db.KnowledgeDocuments.Where(d => d.Id == late.Id).ExecuteDeleteAsync());
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        await _bed.QueryAsync(async db =>
        {
            db.KnowledgeDocuments.Add(late);
            return await db.SaveChangesAsync();
        });
        Assert.Equal(5, (await ledger.BalanceAsync(subscription.CustomerId)).Reserved);

        var closed = await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None);

        Assert.Equal(1, closed);
        var row = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().SingleAsync(d => d.Id == late.Id));
        Assert.Equal((ParseStates.Cancel, (Guid?)null, (DateTimeOffset?)null), (row.Status, row.CreditReservationId, row.ChargedAt));
        var balance = await ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((100L, 0L), (balance.Balance, balance.Reserved));
        Assert.Equal(0, await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_restored_subscription_starts_with_an_empty_knowledge_base_its_old_documents_forgotten_and_its_charges_kept()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        await UploadAsync(subscription.Id, "handbook.txt");
        _bed.Ragflow.FinishParsing(subscription.RagflowDatasetId!);
        await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None);
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        var entries = await LedgerAsync(subscription.CustomerId);
        Assert.Single(entries, e => e.Kind == LedgerEntryKind.Charge && e.Component == "rag_credits");

        var restore = _bed.Waldur.PlaceOrder("Restore", _bed.Offering, resource, TenantTestBed.Attributes());
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(restore)).Outcome);

        var restored = await _bed.SubscriptionAsync(resource);
        Assert.Equal(restored.RagflowDatasetId, Assert.Single(_bed.Ragflow.Datasets)["id"]!.GetValue<string>());
        Assert.Empty(_bed.Ragflow.Documents(restored.RagflowDatasetId!));
        // The charge stays in the ledger: the parse was done and paid for before the termination.
        Assert.Equal(entries.Select(e => (e.Id, e.Kind, e.Credits)), (await LedgerAsync(subscription.CustomerId)).Select(e => (e.Id, e.Kind, e.Credits)));
        Assert.Equal(95, (await ledger.BalanceAsync(subscription.CustomerId)).Available);
        // Chat no longer searches a knowledge base that holds nothing.
        Assert.False(await _bed.Services.GetRequiredService<KnowledgePresence>().HasDocumentsAsync(subscription.Id, CancellationToken.None));

        // Room for one document only: the forgotten one no longer takes it.
        _bed.Settings["Knowledge:MaxDocumentsPerSubscription"] = "1";
        await using var server = await AdapterTestHost.StartServerAsync(_bed.Settings, new CapturedLogs());
        var key = await KeyAsync(server, subscription.Id);
        var (listed, documents) = await KnowledgeTestBed.SendAsync(server, HttpMethod.Get, "/v1/knowledge/documents", null, key);
        Assert.Equal(HttpStatusCode.OK, listed);
        Assert.Empty(documents["data"]!.AsArray());
        using var form = new MultipartFormDataContent { { new ByteArrayContent(Encoding.UTF8.GetBytes("The new handbook.")), "file", "handbook.txt" } };
        var (uploaded, body) = await KnowledgeTestBed.SendAsync(server, HttpMethod.Post, "/v1/knowledge/documents", form, key);
        Assert.Equal(HttpStatusCode.Created, uploaded);
        Assert.Equal("handbook.txt", Assert.Single(body["data"]!.AsArray())!["name"]!.GetValue<string>());
        Assert.Single(_bed.Ragflow.Documents(restored.RagflowDatasetId!));
    }

    /// <summary>A new subscription has no document records to forget, so its Create does not wait for the parse monitor.</summary>
    [Fact]
    public async Task A_new_subscription_is_provisioned_while_the_parse_monitor_waits_on_ragflow_for_another()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        await _bed.Services.GetRequiredService<CreditLedger>().GrantAsync(subscription.CustomerId, 100, "test funding");
        await UploadAsync(subscription.Id, "handbook.txt");
        var hold = _bed.Ragflow.Upstream.Hold("GET", $"/api/v1/datasets/{subscription.RagflowDatasetId}/documents");
        var poll = _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None);
        try
        {
            await Eventually.TrueAsync(() => hold.Arrived == 1, TimeSpan.FromSeconds(10), "the poll waits on RAGFlow");

            var create = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
            var settled = await _bed.ProcessUntilSettledAsync(create).WaitAsync(TimeSpan.FromSeconds(30));

            Assert.Equal(OrderOutcome.Completed, settled.Outcome);
            Assert.False(poll.IsCompleted);
        }
        finally
        {
            hold.Release();
        }

        await poll;
    }

    [Fact]
    public async Task After_a_restore_a_connector_sync_adds_its_pages_again_to_the_new_knowledge_base()
    {
        _notion.AddWorkspace(NotionToken);
        var database = _notion.AddDatabase(NotionToken);
        _notion.AddPage(NotionToken, "Policy 1", database, NotionFake.Paragraph("Rule 1."));
        _notion.AddPage(NotionToken, "Policy 2", database, NotionFake.Paragraph("Rule 2."));
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        await _bed.Services.GetRequiredService<CreditLedger>().GrantAsync(subscription.CustomerId, 100, "test funding");
        var tenant = await _bed.Services.GetRequiredService<KnowledgeBase>().TenantAsync(subscription.Id, forWrite: true, CancellationToken.None);
        var (connector, connected) = await _bed.Services.GetRequiredService<ConnectorService>().ConnectAsync(
            tenant, ConnectorKind.Notion, new ConnectorSettings(NotionToken: NotionToken, NotionIds: [database]), CancellationToken.None);
        Assert.Equal(2, connected.Added);
        _bed.Ragflow.FinishParsing(subscription.RagflowDatasetId!);
        await _bed.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None);
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        var restore = _bed.Waldur.PlaceOrder("Restore", _bed.Offering, resource, TenantTestBed.Attributes());
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(restore)).Outcome);
        var dataset = (await _bed.SubscriptionAsync(resource)).RagflowDatasetId!;

        await using var server = await AdapterTestHost.StartServerAsync(_bed.Settings, new CapturedLogs());
        var key = await KeyAsync(server, subscription.Id);
        var (status, synced) = await KnowledgeTestBed.SendAsync(server, HttpMethod.Post, $"/v1/knowledge/connectors/{connector.Id}/sync",
            new StringContent("{}", Encoding.UTF8, "application/json"), key);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal((2, 0), (synced["sync"]!["added"]!.GetValue<int>(), synced["sync"]!["unchanged"]!.GetValue<int>()));
        var pages = _bed.Ragflow.Documents(dataset).Select(d => d["name"]!.GetValue<string>()).Order().ToList();
        Assert.Collection(pages, p => Assert.StartsWith("policy-1-", p), p => Assert.StartsWith("policy-2-", p));
        var (_, documents) = await KnowledgeTestBed.SendAsync(server, HttpMethod.Get, "/v1/knowledge/documents", null, key);
        Assert.Equal(pages, documents["data"]!.AsArray().Select(d => d!["name"]!.GetValue<string>()).Order());
    }

    private Task<List<LedgerEntry>> LedgerAsync(Guid customerId) =>
        _bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.CustomerId == customerId).OrderBy(e => e.Id).ToListAsync());

    private static async Task<string> KeyAsync(RunningAdapter server, Guid subscriptionId) =>
        (await server.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscriptionId, ApiKeyKind.Secret, "server", CancellationToken.None)).Plaintext;

    /// <summary>
    /// A funded subscription with one upload whose hold the sweeper gave back (the parse outlived it), and whose parse
    /// RAGFlow finished after that, unseen by a poll.
    /// </summary>
    private async Task<(Guid Resource, CmpWaldurAdapter.Tenants.Subscription Subscription, CreditLedger Ledger, KnowledgeDocument Late)> ParseDoneAfterItsHoldExpiredAsync()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        await ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        var late = await UploadAsync(subscription.Id, "late.txt");
        await ExpireAsync(ledger, late);
        _bed.Ragflow.FinishParsing(subscription.RagflowDatasetId!);
        return (resource, subscription, ledger, late);
    }

    /// <summary>The document is done and charged its 5 credits in one ledger charge, nothing is held, and the final report carries it.</summary>
    private async Task<LedgerEntry> AssertChargedOnceAsync(Guid subscriptionId, Guid customerId, Guid documentId)
    {
        var row = await _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().SingleAsync(d => d.Id == documentId));
        Assert.Equal((ParseStates.Done, true, 5L, (Guid?)null), (row.Status, row.ChargedAt is not null, row.CreditsCharged, row.CreditReservationId));
        var charge = Assert.Single(await ChargesAsync(subscriptionId));
        Assert.Equal(5L, charge.Credits);
        var balance = await _bed.Services.GetRequiredService<CreditLedger>().BalanceAsync(customerId);
        Assert.Equal((95L, 0L), (balance.Balance, balance.Reserved));
        var usage = Assert.Single(_bed.Waldur.Usages, u => u["type"]!.GetValue<string>() == "rag_credits");
        Assert.Equal("5.00", usage["usage"]!.GetValue<string>());
        return charge;
    }

    /// <summary>What the expiry sweeper does to a hold past its lifetime.</summary>
    private static async Task ExpireAsync(CreditLedger ledger, KnowledgeDocument document)
    {
        var released = await ledger.ReleaseAsync(document.CreditReservationId!.Value, "the hold expired before it was settled");
        Assert.Equal(ReleaseStatus.Released, released.Status);
    }

    private Task<List<LedgerEntry>> ChargesAsync(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.SubscriptionId == subscriptionId && e.Kind == LedgerEntryKind.Charge).ToListAsync());

    private async Task<KnowledgeDocument> UploadAsync(Guid subscriptionId, string name)
    {
        var knowledge = _bed.Services.GetRequiredService<KnowledgeBase>();
        var tenant = await knowledge.TenantAsync(subscriptionId, forWrite: true, CancellationToken.None);
        await using var holds = await knowledge.EnsureRoomAsync(tenant, 1, 0, CancellationToken.None);
        var file = KnowledgeFile.FromBytes(name, "text/plain", Encoding.UTF8.GetBytes($"The text of {name}."));
        return Assert.Single(await knowledge.AddAsync(tenant, [(file, DocumentOrigin.Upload)], holds, CancellationToken.None));
    }
}
