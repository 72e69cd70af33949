using System.Net;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// Parses are paid for by ledger holds taken at upload (5 credits per document here): two uploads racing for
/// the credits of one get one 201 and one 402; the hold is settled when the parse is done and given back
/// when it fails or the document is deleted first. A delete racing the charge closes the hold once, whichever
/// comes first: charged, or given back, never both; the poll it races still saves the other documents' states.
/// </summary>
public abstract class KnowledgeCreditHoldTests(DatabaseProvider provider) : IAsyncLifetime
{
    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(provider);
        await _bed.StartAsync(credits: 5);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Two_concurrent_uploads_with_credits_for_one_parse_get_one_402_and_the_parse_is_charged_once()
    {
        var results = await Task.WhenAll(Enumerable.Range(0, 2).Select(i => _bed.UploadAsync(($"doc-{i}.txt", $"document {i}"))));

        Assert.Single(results, r => r.Status == HttpStatusCode.Created);
        var refused = Assert.Single(results, r => r.Status == HttpStatusCode.PaymentRequired);
        KnowledgeTestBed.AssertError(refused.Body, "insufficient_credits");
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Equal(0, await _bed.AvailableAsync()); // set aside while parsing

        // Held credits stay held for the parse under way: a later upload is refused as well.
        Assert.Equal(HttpStatusCode.PaymentRequired, (await _bed.UploadAsync(("later.txt", "later"))).Status);

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        await _bed.PollAsync();

        var document = Assert.Single(await _bed.RowsAsync());
        Assert.NotNull(document.ChargedAt);
        Assert.Equal(5, document.CreditsCharged);
        Assert.Equal(1, await _bed.RagChargesAsync());
        var balance = await _bed.Credits.Ledger.BalanceAsync(_bed.Subscription.CustomerId);
        Assert.Equal((0, 0, 0), (balance.Balance, balance.Reserved, balance.Available));
    }

    [Fact]
    public async Task A_failed_parse_or_a_deleted_document_gives_its_hold_back()
    {
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("scan.pdf", "%PDF-1.4 scan"))).Status);
        Assert.Equal(0, await _bed.AvailableAsync());

        _bed.Ragflow.FailParsing(_bed.DatasetId, "No text could be extracted.");
        await _bed.PollAsync();

        Assert.Equal(5, await _bed.AvailableAsync());
        Assert.Equal(0, await _bed.RagChargesAsync());

        var (status, body) = await _bed.UploadAsync(("notes.txt", "notes"));
        Assert.Equal(HttpStatusCode.Created, status);
        Assert.Equal(0, await _bed.AvailableAsync());
        var id = body["data"]![0]!["id"]!.GetValue<string>();
        Assert.Equal(HttpStatusCode.OK, (await _bed.DeleteAsync($"/v1/knowledge/documents/{id}")).Status);
        Assert.Equal(5, await _bed.AvailableAsync());
        Assert.Equal(0, await _bed.RagChargesAsync());
    }

    [Fact]
    public async Task A_document_deleted_after_its_parse_was_seen_done_and_before_its_hold_was_settled_is_never_charged()
    {
        var id = await UploadParsedAsync();
        HttpStatusCode? deleted = null;
        var listPath = $"/api/v1/datasets/{_bed.DatasetId}/documents";
        _bed.Ragflow.Observe = (request, _) =>
        {
            // RAGFlow has answered the poll's list with the parse done; the buyer's delete completes before the poll charges it.
            if (request.Method == "GET" && request.Path == listPath && deleted is null)
            {
                deleted = _bed.DeleteAsync($"/v1/knowledge/documents/{id}").GetAwaiter().GetResult().Status;
            }
        };

        await _bed.PollAsync();
        _bed.Ragflow.Observe = null;
        await _bed.PollAsync();

        // The delete gave the hold back before the poll could settle it: the parse is not charged, not even directly.
        Assert.Equal(HttpStatusCode.OK, deleted);
        Assert.Empty(await _bed.RowsAsync());
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Equal(0, await _bed.RagChargesAsync());
        Assert.Single(await EntriesAsync(), e => e.Kind == LedgerEntryKind.Release);
        Assert.Equal((5L, 0L, 5L), await BalanceAsync());
    }

    [Fact]
    public async Task A_document_deleted_after_its_hold_was_settled_and_before_the_charge_was_recorded_is_charged_once()
    {
        HttpStatusCode? deleted = null;
        var id = Guid.Empty;
        // Just before the poll records the document charged.
        var beforeTheChargeIsRecorded = new OnceBeforeSaving().Stage(
            changes => changes.Entries<KnowledgeDocument>().Any(e => e.State == EntityState.Modified && e.Entity.ChargedAt is not null),
            async () => deleted = (await _bed.DeleteAsync($"/v1/knowledge/documents/{id}")).Status);
        await _bed.RestartAsync(services => services.AddDatabaseInterceptor(provider, beforeTheChargeIsRecorded));
        id = await UploadParsedAsync();

        await _bed.PollAsync();
        await _bed.PollAsync();

        // The poll settled the hold first: the delete's release finds it settled, so it is charged once and never given back.
        Assert.Equal(HttpStatusCode.OK, deleted);
        Assert.Empty(await _bed.RowsAsync());
        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.DoesNotContain(await EntriesAsync(), e => e.Kind == LedgerEntryKind.Release);
        Assert.Equal((0L, 0L, 0L), await BalanceAsync());
    }

    [Fact]
    public async Task A_document_deleted_during_a_poll_is_skipped_and_the_others_states_are_saved_by_that_poll()
    {
        await _bed.GrantAsync(5);
        HttpStatusCode? deleted = null;
        var id = Guid.Empty;
        // Just before the poll saves the parses it saw done, the buyer deletes one of the documents.
        var beforeThePollSaves = new OnceBeforeSaving().Stage(
            changes => changes.Entries<KnowledgeDocument>().Any(e => e.State == EntityState.Modified && e.Entity.Status == ParseStates.Done),
            async () => deleted = (await _bed.DeleteAsync($"/v1/knowledge/documents/{id}")).Status);
        await _bed.RestartAsync(services => services.AddDatabaseInterceptor(provider, beforeThePollSaves));
        var (status, body) = await _bed.UploadAsync(("deleted.txt", "deleted"), ("kept.txt", "kept"));
        Assert.Equal(HttpStatusCode.Created, status);
        id = Guid.Parse(body["data"]!.AsArray().Single(d => d!["name"]!.GetValue<string>() == "deleted.txt")!["id"]!.GetValue<string>());
        _bed.Ragflow.FinishParsing(_bed.DatasetId);

        await _bed.PollAsync();

        // The same poll saved the other document done and charged, not the next one.
        Assert.True(beforeThePollSaves.Ran);
        Assert.Equal(HttpStatusCode.OK, deleted);
        var kept = Assert.Single(await _bed.RowsAsync());
        Assert.Equal("kept.txt", kept.Name);
        Assert.Equal(ParseStates.Done, kept.Status);
        Assert.NotNull(kept.ChargedAt);
        Assert.Equal(5, kept.CreditsCharged);

        // Each parse charged once: the deleted one's hold was settled before the delete, which then gave nothing back.
        await _bed.PollAsync();
        Assert.Equal(2, await _bed.RagChargesAsync());
        Assert.DoesNotContain(await EntriesAsync(), e => e.Kind == LedgerEntryKind.Release);
        Assert.Equal((0L, 0L, 0L), await BalanceAsync());
    }

    [Fact]
    public async Task A_document_whose_record_cannot_be_saved_leaves_ragflow_and_gives_its_hold_back_at_once()
    {
        await _bed.GrantAsync(5);
        await _bed.RestartAsync(services => UnsavableDocument.Stage(services, provider, "broken.txt"));

        var (status, _) = await _bed.UploadAsync(("kept.txt", "kept"), ("broken.txt", "broken"));

        Assert.Equal(HttpStatusCode.InternalServerError, status);
        var kept = Assert.Single(await _bed.RowsAsync());
        Assert.Equal("kept.txt", kept.Name);
        // Only the recorded document is in RAGFlow, and only its hold is still set aside: no wait for the other's expiry.
        Assert.Equal(kept.RagflowDocumentId, Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>());
        Assert.Equal(kept.CreditReservationId, Assert.Single(await _bed.Credits.QueryAsync(db => db.CreditReservations.Select(r => r.Id).ToListAsync())));
        Assert.Equal(5, await _bed.AvailableAsync());

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.Equal(5, await _bed.AvailableAsync());
    }

    /// <summary>Uploads one document, which RAGFlow then reports parsed; its id.</summary>
    private async Task<Guid> UploadParsedAsync()
    {
        var (status, body) = await _bed.UploadAsync(("notes.txt", "notes"));
        Assert.Equal(HttpStatusCode.Created, status);
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        return Guid.Parse(body["data"]![0]!["id"]!.GetValue<string>());
    }

    private Task<List<LedgerEntry>> EntriesAsync() =>
        _bed.Credits.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.SubscriptionId == _bed.Subscription.Id).ToListAsync());

    private async Task<(long Balance, long Reserved, long Available)> BalanceAsync()
    {
        var balance = await _bed.Credits.Ledger.BalanceAsync(_bed.Subscription.CustomerId);
        return (balance.Balance, balance.Reserved, balance.Available);
    }

    /// <summary>Saving the record of a document of one name fails, as a database that refuses the write would.</summary>
    private sealed class UnsavableDocument(string name) : SaveChangesInterceptor
    {
        public static void Stage(IServiceCollection services, DatabaseProvider provider, string name) =>
            services.AddDatabaseInterceptor(provider, new UnsavableDocument(name));

        public override ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default) =>
            eventData.Context!.ChangeTracker.Entries<KnowledgeDocument>().Any(e => e.State == EntityState.Added && e.Entity.Name == name)
                ? throw new DbUpdateException($"Staged: the record of {name} cannot be saved.")
                : base.SavingChangesAsync(eventData, result, cancellationToken);
    }
}

public sealed class KnowledgeCreditHoldOnSqliteTests() : KnowledgeCreditHoldTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeCreditHoldOnPostgresTests() : KnowledgeCreditHoldTests(DatabaseProvider.Postgres);
