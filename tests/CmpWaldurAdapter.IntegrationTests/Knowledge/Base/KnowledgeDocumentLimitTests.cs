using System.Net;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// The per-subscription document limit holds for requests that run at once: the places of uploads still under way
/// (their parse holds, not yet recorded documents) count, so two requests cannot both take the last places.
/// </summary>
public abstract class KnowledgeDocumentLimitTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string UploadPath = "/api/v1/datasets/[^/]+/documents";

    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(provider);
        _bed.Settings["Knowledge:MaxDocumentsPerSubscription"] = "3";
        await _bed.StartAsync(credits: 100);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_request_arriving_while_another_uploads_the_last_places_is_409_and_sends_nothing()
    {
        var hold = _bed.Ragflow.Hold("POST", UploadPath);
        var first = _bed.UploadAsync(("a.txt", "a"), ("b.txt", "b"));
        await Eventually.TrueAsync(() => hold.Arrived == 1, because: "the first request's upload reaches RAGFlow");

        var second = _bed.UploadAsync(("c.txt", "c"), ("d.txt", "d"));
        var done = await Task.WhenAny(second, Task.Delay(TimeSpan.FromSeconds(20)));
        hold.Release();

        Assert.Same(second, done); // refused at once, not sent on to wait behind the first request's upload
        var (status, body) = await second;
        Assert.Equal(HttpStatusCode.Conflict, status);
        KnowledgeTestBed.AssertError(body, "document_limit_reached");
        Assert.Contains("2 more are being added", body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(1, hold.Arrived);
        Assert.Equal(HttpStatusCode.Created, (await first).Status);
        Assert.Equal(["a.txt", "b.txt"], _bed.Ragflow.Documents(_bed.DatasetId).Select(d => d["name"]!.GetValue<string>()).Order());
        Assert.Equal(100 - 2 * 5, await _bed.AvailableAsync()); // only the two recorded documents' parses are held
    }

    [Fact]
    public async Task Documents_still_parsing_count_once_not_also_as_their_holds()
    {
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("a.txt", "a"), ("b.txt", "b"))).Status);
        Assert.All(await _bed.RowsAsync(), d => Assert.NotNull(d.CreditReservationId));

        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("c.txt", "c"))).Status);
        var (status, body) = await _bed.UploadAsync(("d.txt", "d"));

        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("holds 3 of at most 3 documents;", body["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_places_of_a_failed_upload_are_free_again()
    {
        _bed.Ragflow.Fail("POST", UploadPath, 200, body: """{"code": 500, "message": "storage full"}""");
        Assert.Equal(HttpStatusCode.BadGateway, (await _bed.UploadAsync(("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c"))).Status);

        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("d.txt", "d"), ("e.txt", "e"), ("f.txt", "f"))).Status);
        Assert.Equal(3, (await _bed.RowsAsync()).Count);
    }
}

public sealed class KnowledgeDocumentLimitOnSqliteTests() : KnowledgeDocumentLimitTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeDocumentLimitOnPostgresTests() : KnowledgeDocumentLimitTests(DatabaseProvider.Postgres);
