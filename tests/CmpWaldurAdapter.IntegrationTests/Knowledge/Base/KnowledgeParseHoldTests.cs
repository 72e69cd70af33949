using System.Net;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Knowledge;
using CmpWaldurAdapter.Persistence;
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
        var other = await Ledger.ChargeAsync(_bed.Subscription.CustomerId, _bed.Subscription.Id, ActionClass.ChatMessage, 5, TestCatalogue.PriceBookVersion, "meanwhile");
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
