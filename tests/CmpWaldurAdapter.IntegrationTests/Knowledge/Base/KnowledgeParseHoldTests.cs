using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// A parse's hold lives as long as a parse may run (two <c>StuckAfter</c> and some), far past the ledger's default
/// 15-minute expiry, so a long parse is paid from its hold. A parse that still ends without its hold is charged
/// directly if the organization can pay, and otherwise taken out of the knowledge base unpaid, never served on
/// credit and never charged later. The test clock moves time; the expiry sweeper runs when a test calls it.
/// </summary>
public abstract class KnowledgeParseHoldTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 11, 20, 9, 0, 0, TimeSpan.Zero);

    private KnowledgeTestBed _bed = null!;

    private TestClock Clock => _bed.Credits.Clock!;

    private CreditLedger Ledger => _bed.Credits.Ledger;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(provider, Start);
        await _bed.StartAsync(credits: 5);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private TimeSpan ParseHoldLifetime => _bed.Server.Services.GetRequiredService<IOptionsMonitor<KnowledgeOptions>>().CurrentValue.ParseHoldLifetime;

    private Task<List<LedgerEntry>> EntriesAsync() =>
        _bed.Credits.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.SubscriptionId == _bed.Subscription.Id).ToListAsync());

    private async Task<(long Balance, long Reserved)> BalanceAsync()
    {
        var balance = await Ledger.BalanceAsync(_bed.Subscription.CustomerId);
        return (balance.Balance, balance.Reserved);
    }

    [Fact]
    public async Task A_parse_restarted_once_and_done_after_almost_two_hours_is_charged_from_its_hold_once()
    {
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("manual.pdf", "%PDF-1.4 manual"))).Status);
        var hold = Assert.Single(await _bed.RowsAsync()).CreditReservationId!.Value;
        var ragflowId = Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>();

        // Past the ledger's default expiry: the sweeper leaves the parse's hold alone.
        Clock.Advance(TimeSpan.FromMinutes(16));
        Assert.Equal(0, await Ledger.ReleaseExpiredAsync());
        Assert.Equal(0, await _bed.AvailableAsync());

        // Stuck past StuckAfter (60 minutes): stopped and started again, still on the same hold.
        Clock.Advance(TimeSpan.FromMinutes(45));
        await _bed.PollAsync();
        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));

        Clock.Advance(TimeSpan.FromMinutes(55));
        Assert.Equal(0, await Ledger.ReleaseExpiredAsync());
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        await _bed.PollAsync();
        Assert.Equal(0, await Ledger.ReleaseExpiredAsync());

        var document = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((true, 5L), (document.ChargedAt is not null, document.CreditsCharged));
        var entries = await EntriesAsync();
        var charge = Assert.Single(entries);
        Assert.Equal((LedgerEntryKind.Charge, 5L, hold), (charge.Kind, charge.Credits, charge.ReservationId!.Value));
        Assert.Equal((0L, 0L), await BalanceAsync());
        Assert.Equal(0, await _bed.Credits.QueryAsync(db => db.CreditReservations.CountAsync()));
    }

    [Fact]
    public async Task A_parse_progressing_for_longer_than_its_hold_lifetime_keeps_its_hold_and_is_charged_from_it_though_the_other_credits_were_spent()
    {
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("scan.pdf", "%PDF-1.4 a 500-page scan"))).Status);
        var hold = Assert.Single(await _bed.RowsAsync()).CreditReservationId!.Value;
        await _bed.GrantAsync(5);

        // Progress every 40 minutes (inside StuckAfter), well past the lifetime the hold was reserved with.
        var elapsed = TimeSpan.Zero;
        for (var step = 1; elapsed <= ParseHoldLifetime + TimeSpan.FromHours(1); step++)
        {
            Clock.Advance(TimeSpan.FromMinutes(40));
            elapsed += TimeSpan.FromMinutes(40);
            _bed.Ragflow.AdvanceParsing(_bed.DatasetId, Math.Min(0.95, step * 0.05));
            await _bed.PollAsync();
            Assert.Equal(0, await Ledger.ReleaseExpiredAsync());
        }

        Assert.Equal(ParseStates.Running, Assert.Single(await _bed.RowsAsync()).Status);
        // Only the credits not set aside can be spent: the chat takes them, and cannot take the held ones.
        var spent = await Ledger.ChargeAsync(_bed.Subscription.CustomerId, _bed.Subscription.Id, _bed.Subscription.OfferingUuid, ActionClass.ChatMessage, 5, TestCatalogue.PriceBookVersion, "meanwhile");
        Assert.True(spent.IsCharged);
        var more = await Ledger.ChargeAsync(_bed.Subscription.CustomerId, _bed.Subscription.Id, _bed.Subscription.OfferingUuid, ActionClass.ChatMessage, 5, TestCatalogue.PriceBookVersion, "meanwhile-again");
        Assert.False(more.IsCharged);

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();

        var document = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((ParseStates.Done, 5L), (document.Status, document.CreditsCharged));
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
        var charge = Assert.Single(await EntriesAsync(), e => e.Component == "rag_credits");
        Assert.Equal((LedgerEntryKind.Charge, 5L, hold), (charge.Kind, charge.Credits, charge.ReservationId!.Value));
        Assert.DoesNotContain(await EntriesAsync(), e => e.Kind == LedgerEntryKind.Release);
        Assert.Equal((0L, 0L), await BalanceAsync());
    }

    [Fact]
    public async Task A_stuck_parse_is_still_restarted_once_then_failed_and_its_hold_given_back()
    {
        await _bed.UploadAsync(("stuck.pdf", "%PDF-1.4 stuck"));
        var ragflowId = Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId))["id"]!.GetValue<string>();
        _bed.Ragflow.AdvanceParsing(_bed.DatasetId, 0.1);
        await _bed.PollAsync();

        for (var i = 0; i < 4; i++)
        {
            Clock.Advance(TimeSpan.FromMinutes(61));
            await _bed.PollAsync();
        }

        Assert.Equal(2, _bed.Ragflow.ParseRequests(ragflowId));
        var document = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((ParseStates.Fail, (DateTimeOffset?)null, 0L), (document.Status, document.ChargedAt, document.CreditsCharged));
        Assert.Contains("made no progress", document.Error);
        Assert.Equal(0, await _bed.Credits.QueryAsync(db => db.CreditReservations.CountAsync()));
        Assert.Equal((5L, 0L), await BalanceAsync());
        Assert.Equal(0, await _bed.RagChargesAsync());
    }

    [Fact]
    public async Task A_parse_done_after_its_hold_expired_is_charged_directly_once_when_the_credits_are_there()
    {
        await _bed.UploadAsync(("late.txt", "late"));

        Clock.Advance(ParseHoldLifetime + TimeSpan.FromMinutes(1));
        Assert.Equal(1, await Ledger.ReleaseExpiredAsync());
        Assert.Equal(5, await _bed.AvailableAsync());
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        for (var i = 0; i < 3; i++)
        {
            await _bed.PollAsync();
        }

        var document = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((true, 5L, (Guid?)null), (document.ChargedAt is not null, document.CreditsCharged, document.CreditReservationId));
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
        var entries = await EntriesAsync();
        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.Single(entries, e => e.Kind == LedgerEntryKind.Release);
        Assert.Equal((0L, 0L), await BalanceAsync());
    }

    [Fact]
    public async Task A_parse_done_after_its_hold_expired_with_no_credits_left_is_removed_unpaid_and_never_charged_later()
    {
        await _bed.UploadAsync(("handbook.md", "# Handbook"));
        Clock.Advance(ParseHoldLifetime + TimeSpan.FromMinutes(1));
        Assert.Equal(1, await Ledger.ReleaseExpiredAsync());
        // The given-back credits are spent on something else before the parse is seen done.
        var other = await Ledger.ChargeAsync(_bed.Subscription.CustomerId, _bed.Subscription.Id, _bed.Subscription.OfferingUuid, ActionClass.ChatMessage, 5, TestCatalogue.PriceBookVersion, "meanwhile");
        Assert.True(other.IsCharged);

        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();

        var listed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal("failed", listed["status"]!.GetValue<string>());
        Assert.Contains("removed from the knowledge base and nothing was charged", listed["error"]!.GetValue<string>());
        Assert.Equal(0, listed["credits_charged"]!.GetValue<long>());
        // Out of RAGFlow: no retrieval can draw on it.
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));

        // Credits that arrive later are not taken for it, however often the poll runs.
        await _bed.GrantAsync(5);
        for (var i = 0; i < 3; i++)
        {
            await _bed.PollAsync();
        }

        Assert.Equal(0, await _bed.RagChargesAsync());
        Assert.Equal("failed", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());
        Assert.Equal((5L, 0L), await BalanceAsync());
        Assert.Equal("chat_credits", Assert.Single(await EntriesAsync(), e => e.Kind == LedgerEntryKind.Charge).Component);

        // Uploading it again is an ordinary upload: held now, charged once when parsed.
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("handbook.md", "# Handbook"))).Status);
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();
        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.Equal((0L, 0L), await BalanceAsync());
    }

    // RAGFlow answers a refused delete with HTTP 200 and a non-zero code: the removal failing in its database
    // (permanent, tried once per poll), or its document engine down (transient, retried).
    [Theory]
    [InlineData("""{"code":102,"message":"Database error (Document removal)!"}""")]
    [InlineData("""{"code":100,"message":"ConnectionError('Elasticsearch is unreachable')"}""")]
    public async Task A_parse_done_unpaid_whose_removal_ragflow_refuses_stays_uncharged_and_is_removed_by_the_first_poll_ragflow_lets_delete(string refusal)
    {
        await _bed.UploadAsync(("handbook.md", "# Handbook"));
        await ParseDoneAfterTheCreditsAreGoneAsync();
        _bed.Ragflow.Fail("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200, times: int.MaxValue, body: refusal);

        await _bed.PollAsync();
        await _bed.PollAsync();

        // Not charged, and not failed while it is still in RAGFlow: listed done, unpaid, and every poll tries again.
        var row = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((ParseStates.Done, (DateTimeOffset?)null, 0L, (Guid?)null), (row.Status, row.ChargedAt, row.CreditsCharged, row.CreditReservationId));
        var listed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("done", 0L), (listed["status"]!.GetValue<string>(), listed["credits_charged"]!.GetValue<long>()));
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
        var tries = _bed.Ragflow.Count("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/documents");
        Assert.True(tries >= 2, $"{tries} delete(s) in two polls");
        Assert.Equal(0, await _bed.RagChargesAsync());
        Assert.Equal((0L, 0L), await BalanceAsync());

        // RAGFlow takes the delete: out of the knowledge base, failed with the reason, never charged.
        _bed.Ragflow.Heal();
        await _bed.PollAsync();
        await _bed.PollAsync();

        var failed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("failed", 0L), (failed["status"]!.GetValue<string>(), failed["credits_charged"]!.GetValue<long>()));
        Assert.Contains("removed from the knowledge base and nothing was charged", failed["error"]!.GetValue<string>());
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));
        Assert.Equal(0, await _bed.RagChargesAsync());
        Assert.Equal((0L, 0L), await BalanceAsync());
    }

    [Fact]
    public async Task A_parse_done_unpaid_whose_removal_ragflow_refuses_is_charged_by_the_next_poll_once_credits_come()
    {
        await _bed.UploadAsync(("handbook.md", "# Handbook"));
        await ParseDoneAfterTheCreditsAreGoneAsync();
        _bed.Ragflow.Fail("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200, times: int.MaxValue, body: """{"code":102,"message":"Database error (Document removal)!"}""");
        await _bed.PollAsync();
        Assert.Equal(0, await _bed.RagChargesAsync());

        // The refused charge left nothing behind: the same request id charges now that the credits are there.
        await _bed.GrantAsync(5);
        await _bed.PollAsync();
        await _bed.PollAsync();

        var row = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((ParseStates.Done, 5L), (row.Status, row.CreditsCharged));
        Assert.NotNull(row.ChargedAt);
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));
        var charge = Assert.Single(await EntriesAsync(), e => e.Component == "rag_credits" && e.Kind == LedgerEntryKind.Charge);
        Assert.Equal($"doc:{row.RagflowDocumentId}", charge.RequestId);
        Assert.Equal((0L, 0L), await BalanceAsync());
    }

    [Fact]
    public async Task A_connectors_page_whose_unpaid_removal_ragflow_refuses_is_kept_by_its_sync_and_added_again_after_the_removal_once_paid_for()
    {
        const string token = "secret_buyer_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ";
        _bed.Notion.AddWorkspace(token);
        var database = _bed.Notion.AddDatabase(token);
        _bed.Notion.AddPage(token, "Refund policy", database, NotionFake.Paragraph("Refunds are paid within 30 days."));
        var (connected, body) = await _bed.PostJsonAsync("/v1/knowledge/connectors/notion", new JsonObject { ["integration_token"] = token, ["ids"] = new JsonArray(database) });
        Assert.Equal(HttpStatusCode.Created, connected);
        var sync = $"/v1/knowledge/connectors/{body["connector"]!["id"]!.GetValue<string>()}/sync";
        var page = Assert.Single(await _bed.RowsAsync());
        await ParseDoneAfterTheCreditsAreGoneAsync();
        _bed.Ragflow.Fail("DELETE", $"/api/v1/datasets/{_bed.DatasetId}/documents", 200, times: int.MaxValue, body: """{"code":102,"message":"Database error (Document removal)!"}""");
        await _bed.PollAsync();

        // While RAGFlow keeps it, the page is there and unchanged: the sync leaves it (no second copy, nothing charged).
        var (kept, keptBody) = await _bed.PostJsonAsync(sync, []);
        Assert.Equal(HttpStatusCode.OK, kept);
        Assert.Equal((0, 0, 0, 1), Counts(keptBody));
        var unpaid = Assert.Single(await _bed.RowsAsync());
        Assert.Equal((page.Id, ParseStates.Done, (DateTimeOffset?)null, page.SourceVersion), (unpaid.Id, unpaid.Status, unpaid.ChargedAt, unpaid.SourceVersion));
        Assert.Single(_bed.Ragflow.Documents(_bed.DatasetId));

        // Removed once RAGFlow lets it go; the next sync brings the page back, held and paid for like any upload.
        _bed.Ragflow.Heal();
        await _bed.PollAsync();
        Assert.Equal("failed", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());
        Assert.Empty(_bed.Ragflow.Documents(_bed.DatasetId));

        var (refused, refusedBody) = await _bed.PostJsonAsync(sync, []);
        Assert.Equal(HttpStatusCode.PaymentRequired, refused);
        KnowledgeTestBed.AssertError(refusedBody, "insufficient_credits");
        Assert.Equal("failed", Assert.Single(await _bed.DocumentsAsync())!["status"]!.GetValue<string>());

        await _bed.GrantAsync(5);
        var (replaced, replacedBody) = await _bed.PostJsonAsync(sync, []);
        Assert.Equal(HttpStatusCode.OK, replaced);
        Assert.Equal((0, 1, 0, 0), Counts(replacedBody));
        var again = Assert.Single(await _bed.RowsAsync());
        Assert.NotEqual(page.RagflowDocumentId, again.RagflowDocumentId);
        Assert.Equal((page.ExternalId, page.SourceVersion), (again.ExternalId, again.SourceVersion));
        Assert.NotNull(again.CreditReservationId);
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();

        var listed = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("done", 5L), (listed["status"]!.GetValue<string>(), listed["credits_charged"]!.GetValue<long>()));
        Assert.Equal(page.Name, listed["name"]!.GetValue<string>());
        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.Equal((0L, 0L), await BalanceAsync());
    }

    /// <summary>The parse of the one document outlives its hold, the given-back credits are spent elsewhere, and then it is done.</summary>
    private async Task ParseDoneAfterTheCreditsAreGoneAsync()
    {
        Clock.Advance(ParseHoldLifetime + TimeSpan.FromMinutes(1));
        Assert.Equal(1, await Ledger.ReleaseExpiredAsync());
        var other = await Ledger.ChargeAsync(_bed.Subscription.CustomerId, _bed.Subscription.Id, _bed.Subscription.OfferingUuid, ActionClass.ChatMessage, 5, TestCatalogue.PriceBookVersion, $"meanwhile-{Guid.NewGuid():N}");
        Assert.True(other.IsCharged);
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
    }

    private static (int Added, int Replaced, int Removed, int Unchanged) Counts(JsonObject body)
    {
        var sync = body["sync"]!;
        return (sync["added"]!.GetValue<int>(), sync["replaced"]!.GetValue<int>(), sync["removed"]!.GetValue<int>(), sync["unchanged"]!.GetValue<int>());
    }
}

public sealed class KnowledgeParseHoldOnSqliteTests() : KnowledgeParseHoldTests(DatabaseProvider.Sqlite);

public sealed class KnowledgeParseHoldOnPostgresTests() : KnowledgeParseHoldTests(DatabaseProvider.Postgres);

/// <summary>
/// An offering whose price book makes parsing free: the upload takes a hold of 0 (the organization was never
/// granted credits) and the done document is charged 0, recorded once, not left polling.
/// </summary>
public sealed class KnowledgeFreeParseTests : IAsyncLifetime
{
    private KnowledgeTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(DatabaseProvider.Sqlite);
        var entry = Path.Combine(_bed.Credits.Catalogue.Directory, TestCatalogue.Slug + ".yaml");
        await File.WriteAllTextAsync(entry, (await File.ReadAllTextAsync(entry)).Replace("rag_document: 5", "rag_document: 0", StringComparison.Ordinal));
        await _bed.StartAsync(credits: 0);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_free_parse_is_done_and_charged_nothing()
    {
        Assert.Equal(HttpStatusCode.Created, (await _bed.UploadAsync(("free.txt", "free"))).Status);
        _bed.Ragflow.FinishParsing(_bed.DatasetId);
        await _bed.PollAsync();

        var document = Assert.Single(await _bed.DocumentsAsync())!;
        Assert.Equal(("done", 0L), (document["status"]!.GetValue<string>(), document["credits_charged"]!.GetValue<long>()));
        Assert.NotNull(Assert.Single(await _bed.RowsAsync()).ChargedAt);
        Assert.Equal(1, await _bed.RagChargesAsync());
        Assert.Equal(0, await _bed.AvailableAsync());
        Assert.Equal(0, await _bed.PollAsync());
        Assert.Equal(1, await _bed.RagChargesAsync());
    }
}
