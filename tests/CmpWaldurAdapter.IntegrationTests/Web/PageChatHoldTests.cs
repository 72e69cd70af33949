using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Chat;
using CmpWaldurAdapter.Web;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class PageChatHoldOnSqliteTests() : PageChatHoldTests(DatabaseProvider.Sqlite);

public sealed class PageChatHoldOnPostgresTests() : PageChatHoldTests(DatabaseProvider.Postgres);

/// <summary>
/// The buyer pages' messages (console, widget) are held and prepared as the API's are: the retrieval runs while the
/// credits are held and is dropped unused when the hold is refused, and the answer goes out while its charge is
/// written. Here the ledger's hold answers only once the retrieval has reached RAGFlow (a message that retrieved
/// only after its hold would never get one), and its settle waits at a gate the test opens.
/// </summary>
public abstract class PageChatHoldTests(DatabaseProvider provider) : IAsyncLifetime
{
    private readonly SettleGate _gate = new();
    private ChatGatewayBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatGatewayBed.StartAsync(provider, services: services =>
        services.Replace(ServiceDescriptor.Singleton<IChatCredits>(sp => new HoldAfterRetrievalStarts(
            new GatedChatCredits(ActivatorUtilities.CreateInstance<LedgerChatCredits>(sp), _gate), () => _bed.Upstream.Retrievals, () => null))));

    public async Task DisposeAsync()
    {
        _gate.Open();
        await _bed.DisposeAsync();
    }

    private IPageChat Pages => _bed.Server.Services.GetRequiredService<IPageChat>();

    [Fact]
    public async Task A_page_message_retrieves_while_its_credits_are_held_and_runs_once_they_are()
    {
        var (subscription, _) = await _bed.SubscribeAsync(credits: 10);

        var answer = await Pages.AnswerAsync(subscription, "widget", "visitor-1", "Where is my parcel?", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.True(answer.Answered, answer.Error);
        Assert.Equal(StatusCodes.Status200OK, answer.Status);
        Assert.Equal((1, 1), (_bed.Upstream.Retrievals, _bed.Upstream.Runs));
        // The price held, which the settle charges.
        Assert.Equal(2, answer.Charged);
    }

    [Fact]
    public async Task A_page_answer_is_sent_while_its_charge_is_written_and_is_charged_once()
    {
        var (subscription, _) = await _bed.SubscribeAsync(credits: 10);

        var answer = await Pages.AnswerAsync(subscription, "console", "run-tab", "Where is my parcel?", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        // Answered while the settle still waits at the gate: the price is held, nothing charged yet.
        Assert.True(answer.Answered, answer.Error);
        await _gate.Reached.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(answer.Settled.IsCompleted);
        Assert.Equal((10L, 2L, 0, 0L), await LedgerAsync(subscription));

        _gate.Open();
        await answer.Settled.WaitAsync(TimeSpan.FromSeconds(10));
        await _bed.Server.Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((8L, 0L, 1, 2L), await LedgerAsync(subscription));
    }

    [Fact]
    public async Task A_page_message_whose_hold_is_refused_gets_the_same_402_runs_nothing_and_charges_nothing()
    {
        var (subscription, _) = await _bed.SubscribeAsync(credits: 0);
        _bed.Upstream.RetrievalDelay = TimeSpan.FromSeconds(30);

        var answer = await Pages.AnswerAsync(subscription, "widget", "visitor-1", "Where is my parcel?", CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20));

        // The refusal of before, to the letter; the retrieval started meanwhile is dropped mid-call and never used.
        Assert.Equal(PageAnswer.Refused(StatusCodes.Status402PaymentRequired, "Your organization has not enough credits left for this message. Ask your organization's owner to add credits."), answer);
        Assert.Equal((1, 0), (_bed.Upstream.Retrievals, _bed.Upstream.Runs));
        Assert.False(_gate.Reached.IsCompleted);
        Assert.Equal((0L, 0L, 0, 0L), await LedgerAsync(subscription));
        using var http = _bed.Server.CreateClient();
        var ragflow = (await http.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{upstream=\"ragflow\"", StringComparison.Ordinal));
        Assert.Equal(["cmp_upstream_requests_total{upstream=\"ragflow\",outcome=\"discarded\"} 1"], ragflow);
    }

    /// <summary>The organization's balance and held credits, and the subscription's charges (count and sum).</summary>
    private async Task<(long Balance, long Reserved, int Charges, long Charged)> LedgerAsync(Subscription subscription)
    {
        var balance = await _bed.Server.Services.GetRequiredService<CreditLedger>().BalanceAsync(subscription.CustomerId);
        await using var db = await _bed.Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        var charges = await db.LedgerEntries.Where(e => e.SubscriptionId == subscription.Id && e.Kind == LedgerEntryKind.Charge).Select(e => e.Credits).ToListAsync();
        return (balance.Balance, balance.Reserved, charges.Count, charges.Sum());
    }
}
