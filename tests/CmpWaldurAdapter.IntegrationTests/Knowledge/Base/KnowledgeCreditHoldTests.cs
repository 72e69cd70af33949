using System.Net;
using CmpWaldurAdapter.Persistence;

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
}

public sealed class KnowledgeCreditHoldOnSqliteTests() : KnowledgeCreditHoldTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeCreditHoldOnPostgresTests() : KnowledgeCreditHoldTests(DatabaseProvider.Postgres);
