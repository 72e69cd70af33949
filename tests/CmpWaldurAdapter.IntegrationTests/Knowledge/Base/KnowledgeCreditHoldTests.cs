using System.Net;
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
/// when it fails or the document is deleted first.
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
