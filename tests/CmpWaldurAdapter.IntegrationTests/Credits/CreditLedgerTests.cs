using System.Collections.Concurrent;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Credits;

public sealed class CreditLedgerOnPostgresTests() : CreditLedgerTests(DatabaseProvider.Postgres)
{
    [Fact]
    public async Task Concurrent_holds_of_different_organizations_commit_together()
    {
        var subscriptions = await FundedSubscriptionsAsync(40, credits: 10);

        var holds = await Task.WhenAll(subscriptions.Select(s => Task.Run(() => Ledger.ReserveAsync(s.CustomerId, s.Id, s.OfferingUuid, ActionClass.ChatMessage, 2, 3, "together"))));

        // Rows written by one transaction share its id (xmin): holds queued behind a running one went in one batch.
        Assert.All(holds, h => Assert.True(h.IsHeld));
        var transactions = await Bed.QueryAsync(db => db.Database.SqlQueryRaw<string>("SELECT xmin::text AS \"Value\" FROM credit_reservations").ToListAsync());
        Assert.Equal(40, transactions.Count);
        Assert.True(transactions.Distinct().Count() < 20, $"{transactions.Distinct().Count()} transactions for 40 concurrent holds");
    }

    [Fact]
    public async Task Charges_that_go_in_one_statement_keep_their_own_times_and_months()
    {
        var subscription = (await FundedSubscriptionsAsync(1, credits: 100)).Single();
        Bed.Clock!.SetUtcNow(new DateTimeOffset(2026, 3, 31, 23, 59, 58, TimeSpan.Zero));
        // Another transaction holds the organization's account: the first charge waits at the database and the next
        // two queue behind it, to go together in one statement once it is free.
        await using var blocker = new Npgsql.NpgsqlConnection(Bed.Database.ConnectionString);
        await blocker.OpenAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await using (var lockAccount = new Npgsql.NpgsqlCommand($"SELECT 1 FROM credit_accounts WHERE customer_id = '{subscription.CustomerId}' FOR UPDATE", blocker, transaction))
        {
            await lockAccount.ExecuteScalarAsync();
        }

        var first = Task.Run(() => Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, "first"));
        await Task.Delay(300);
        var march = Task.Run(() => Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, "march"));
        await Task.Delay(300);
        Bed.Clock.SetUtcNow(new DateTimeOffset(2026, 4, 1, 0, 0, 1, TimeSpan.Zero));
        var april = Task.Run(() => Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 1, "april"));
        await Task.Delay(300);
        await transaction.RollbackAsync();
        await Task.WhenAll(first, march, april);

        var entries = await Bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.Kind == LedgerEntryKind.Charge).ToDictionaryAsync(e => e.RequestId!, e => (e.Period, e.OccurredAt)));
        Assert.Equal(new DateOnly(2026, 3, 1), entries["march"].Period);
        Assert.Equal(new DateOnly(2026, 4, 1), entries["april"].Period);
        Assert.Equal(new DateTimeOffset(2026, 3, 31, 23, 59, 58, TimeSpan.Zero), entries["march"].OccurredAt);
        // The two queued charges did go in one statement: one transaction wrote both.
        var transactions = await Bed.QueryAsync(db => db.Database.SqlQueryRaw<string>("SELECT xmin::text AS \"Value\" FROM credit_ledger_entries WHERE request_id IN ('march', 'april')").ToListAsync());
        Assert.Single(transactions.Distinct());
    }

    [Fact]
    public async Task Closes_racing_for_one_hold_each_learn_how_it_was_closed_and_it_closes_once()
    {
        var subscription = (await FundedSubscriptionsAsync(1, credits: 100)).Single();
        var hold = (await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 5, 1, "raced")).ReservationId!.Value;
        // Another transaction holds the organization's account: every close takes its snapshot (the hold still in it)
        // and waits for the lock; the first to get it closes the hold, the others find it closed since their snapshot.
        await using var blocker = new Npgsql.NpgsqlConnection(Bed.Database.ConnectionString);
        await blocker.OpenAsync();
        await using var transaction = await blocker.BeginTransactionAsync();
        await using (var lockAccount = new Npgsql.NpgsqlCommand($"SELECT 1 FROM credit_accounts WHERE customer_id = '{subscription.CustomerId}' FOR UPDATE", blocker, transaction))
        {
            await lockAccount.ExecuteScalarAsync();
        }

        var settles = Enumerable.Range(0, 6).Select(_ => Task.Run(() => Ledger.SettleAsync(hold))).ToList();
        var releases = Enumerable.Range(0, 6).Select(_ => Task.Run(() => Ledger.ReleaseAsync(hold))).ToList();
        await Task.Delay(500);
        Assert.All(settles.Concat<Task>(releases), t => Assert.False(t.IsCompleted));
        await transaction.RollbackAsync();
        var settled = (await Task.WhenAll(settles)).Select(r => r.Status).ToList();
        var released = (await Task.WhenAll(releases)).Select(r => r.Status).ToList();

        var entry = Assert.Single(await Bed.QueryAsync(db => db.LedgerEntries.AsNoTracking().Where(e => e.ReservationId == hold).ToListAsync()));
        if (entry.Kind == LedgerEntryKind.Charge)
        {
            Assert.Equal(5, entry.Credits);
            Assert.Single(settled, s => s == SettleStatus.Settled);
            Assert.All(settled, s => Assert.True(s is SettleStatus.Settled or SettleStatus.AlreadySettled, $"settle: {s}"));
            Assert.All(released, s => Assert.Equal(ReleaseStatus.AlreadySettled, s));
            Assert.Equal((95L, 0L), await BalanceAndReservedAsync(subscription.CustomerId));
        }
        else
        {
            Assert.Single(released, s => s == ReleaseStatus.Released);
            Assert.All(released, s => Assert.True(s is ReleaseStatus.Released or ReleaseStatus.AlreadyReleased, $"release: {s}"));
            Assert.All(settled, s => Assert.Equal(SettleStatus.AlreadyReleased, s));
            Assert.Equal((100L, 0L), await BalanceAndReservedAsync(subscription.CustomerId));
        }
    }
}

public sealed class CreditLedgerOnSqliteTests() : CreditLedgerTests(DatabaseProvider.Sqlite)
{
    [Fact]
    public async Task Writes_queued_behind_a_running_one_commit_together_and_one_that_fails_or_was_given_up_changes_nothing()
    {
        var subscription = (await FundedSubscriptionsAsync(1, credits: 100))[0];
        var store = Bed.Services.GetRequiredService<ICreditStore>();
        var now = DateTimeOffset.UtcNow;
        Task<ChargeResult> Charge(long credits, string requestId, CancellationToken cancellationToken = default) =>
            store.ChargeAsync(new ChargeRequest(subscription.CustomerId, subscription.Id, ActionClass.ChatMessage, credits, 1, requestId), Guid.NewGuid(), now, cancellationToken);

        // Another process (a CLI grant, say) holds SQLite's write lock: the first write waits for it, every later one queues behind it.
        await using var other = new Microsoft.Data.Sqlite.SqliteConnection(Bed.Database.ConnectionString);
        await other.OpenAsync();
        await using var otherWrite = other.BeginTransaction(deferred: false);
        var committedBefore = ((SqliteCreditStore)store).Transactions;
        var queued = Enumerable.Range(0, 30).Select(i => Charge(1, $"queued-{i}")).ToList();
        var broken = Charge(-5, "broken"); // breaks the ledger's check constraint inside the batch
        using var givenUp = new CancellationTokenSource();
        var abandoned = Charge(1, "abandoned", givenUp.Token);
        queued.AddRange(Enumerable.Range(30, 10).Select(i => Charge(1, $"queued-{i}")));
        await givenUp.CancelAsync();
        await Task.Delay(100);
        Assert.All(queued, q => Assert.False(q.IsCompleted));
        Assert.True(abandoned.IsCanceled); // told at once, not when the lock frees
        await otherWrite.CommitAsync();

        Assert.All(await Task.WhenAll(queued), r => Assert.Equal(ChargeStatus.Charged, r.Status));
        Assert.Equal(19, (await Assert.ThrowsAsync<Microsoft.Data.Sqlite.SqliteException>(() => broken)).SqliteErrorCode); // SQLITE_CONSTRAINT
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        Assert.Equal(60, (await Ledger.BalanceAsync(subscription.CustomerId)).Available);
        var charged = await Bed.QueryAsync(db => db.LedgerEntries.Where(e => e.SubscriptionId == subscription.Id).Select(e => e.RequestId).ToListAsync());
        Assert.Equal(Enumerable.Range(0, 40).Select(i => $"queued-{i}").Order(), charged.Order());
        // The first write (waiting for the lock when the others came) went alone at most; the rest shared one transaction.
        Assert.InRange(((SqliteCreditStore)store).Transactions - committedBefore, 1, 2);
    }
}

/// <summary>The ledger's promises, proven on PostgreSQL and on SQLite alike.</summary>
public abstract class CreditLedgerTests(DatabaseProvider provider) : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private CreditTestBed _bed = null!;

    protected CreditTestBed Bed => _bed;

    protected CreditLedger Ledger => _bed.Ledger;

    /// <summary>Subscriptions of as many organizations, each granted <paramref name="credits"/>.</summary>
    protected async Task<List<Subscription>> FundedSubscriptionsAsync(int count, long credits)
    {
        var subscriptions = new List<Subscription>();
        for (var i = 0; i < count; i++)
        {
            var subscription = await _bed.AddSubscriptionAsync();
            await Ledger.GrantAsync(subscription.CustomerId, credits, "test funding");
            subscriptions.Add(subscription);
        }

        return subscriptions;
    }

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(provider, Start);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Two_thousand_concurrent_charges_against_a_thousand_credits_charge_exactly_five_hundred()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 1000, "test funding");
        var requests = Enumerable.Range(0, 2000).Select(i => $"message-{i}").ToList();

        var lowest = long.MaxValue;
        using var watching = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            while (!watching.IsCancellationRequested)
            {
                var seen = await Ledger.BalanceAsync(subscription.CustomerId);
                Interlocked.Exchange(ref lowest, Math.Min(Interlocked.Read(ref lowest), seen.Balance - seen.Reserved));
            }
        });

        var first = await ChargeAllAsync(subscription, requests);
        await watching.CancelAsync();
        await watcher;

        Assert.Equal(500, first.Count(r => r.Status == ChargeStatus.Charged));
        Assert.Equal(1500, first.Count(r => r is { Status: ChargeStatus.Refused, Refusal: CreditRefusal.InsufficientCredits }));
        Assert.True(lowest >= 0, $"The available balance was seen at {lowest}.");
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((0L, 0L, 0L), (balance.Balance, balance.Reserved, balance.Available));

        // Each charge saw the balance its predecessor left: one entry per even balance from 998 down to 0.
        var trail = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.Kind == LedgerEntryKind.Charge).Select(e => e.BalanceAfter).ToListAsync());
        Assert.Equal(Enumerable.Range(0, 500).Select(i => (long)(i * 2)), trail.Order());

        var replay = await ChargeAllAsync(subscription, requests);

        Assert.Equal(500, replay.Count(r => r.Status == ChargeStatus.Replayed));
        Assert.Equal(1500, replay.Count(r => r.Status == ChargeStatus.Refused));
        Assert.All(replay.Where(r => r.Status == ChargeStatus.Replayed), r => Assert.Equal(2, r.Credits));
        Assert.Equal(500, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.Kind == LedgerEntryKind.Charge)));
        Assert.Equal(0, (await Ledger.BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task Concurrent_copies_of_one_request_charge_it_once()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 100, "test funding");

        var charges = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Task.Run(() =>
            Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 3, 1, "same-request"))));
        var holds = await Task.WhenAll(Enumerable.Range(0, 40).Select(_ => Task.Run(() =>
            Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ImageGeneration, 10, 1, "same-hold"))));

        Assert.Single(charges, c => c.Status == ChargeStatus.Charged);
        Assert.Equal(39, charges.Count(c => c.Status == ChargeStatus.Replayed));
        Assert.Single(holds, h => h.Status == ReservationStatus.Held);
        Assert.Equal(39, holds.Count(h => h.Status == ReservationStatus.AlreadyHeld));
        Assert.Single(holds.Select(h => h.ReservationId).Distinct());
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((97L, 10L, 87L), (balance.Balance, balance.Reserved, balance.Available));
    }

    [Fact]
    public async Task Reserve_then_settle_charges_the_actual_amount_and_gives_back_the_rest()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 100, "test funding");

        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 10, 3, "chat-1");
        var whileHeld = await Ledger.BalanceAsync(subscription.CustomerId);
        var settled = await Ledger.SettleAsync(hold.ReservationId!.Value, actualCredits: 7);
        var again = await Ledger.SettleAsync(hold.ReservationId.Value);
        var releaseAfter = await Ledger.ReleaseAsync(hold.ReservationId.Value);

        Assert.Equal(ReservationStatus.Held, hold.Status);
        Assert.Equal((100L, 10L, 90L), (whileHeld.Balance, whileHeld.Reserved, whileHeld.Available));
        Assert.Equal((SettleStatus.Settled, 7L, 93L), (settled.Status, settled.Credits, settled.Available));
        Assert.Equal((SettleStatus.AlreadySettled, 7L), (again.Status, again.Credits));
        Assert.Equal(ReleaseStatus.AlreadySettled, releaseAfter.Status);
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((93L, 0L, 93L), (balance.Balance, balance.Reserved, balance.Available));

        var charge = await _bed.QueryAsync(db => db.LedgerEntries.SingleAsync(e => e.Kind == LedgerEntryKind.Charge));
        Assert.Equal((7L, "chat_credits", 3, ActionClass.ChatMessage), (charge.Credits, charge.Component, charge.PriceBookVersion!.Value, charge.ActionClass!.Value));
        Assert.Equal((subscription.Id, subscription.ResourceUuid, hold.ReservationId), (charge.SubscriptionId!.Value, charge.ResourceUuid!.Value, charge.ReservationId));
        Assert.Equal((new DateOnly(2026, 3, 1), Start, 93L), (charge.Period, charge.OccurredAt, charge.BalanceAfter));
        Assert.Empty(await _bed.QueryAsync(db => db.CreditReservations.ToListAsync()));
    }

    [Fact]
    public async Task A_failed_upstream_call_is_released_not_charged_and_may_be_tried_again()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 20, "test funding");

        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ImageGeneration, 10, 3, "image-1");
        var released = await Ledger.ReleaseAsync(hold.ReservationId!.Value, "image service answered 502");
        var twice = await Ledger.ReleaseAsync(hold.ReservationId.Value);
        var settleAfter = await Ledger.SettleAsync(hold.ReservationId.Value);
        var retry = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ImageGeneration, 10, 3, "image-1");

        Assert.Equal((ReleaseStatus.Released, 10L, 20L), (released.Status, released.Credits, released.Available));
        Assert.Equal(ReleaseStatus.AlreadyReleased, twice.Status);
        Assert.Equal(SettleStatus.AlreadyReleased, settleAfter.Status);
        Assert.Equal(ReservationStatus.Held, retry.Status);
        Assert.NotEqual(hold.ReservationId, retry.ReservationId);
        var entry = await _bed.QueryAsync(db => db.LedgerEntries.SingleAsync(e => e.Kind == LedgerEntryKind.Release));
        Assert.Equal(("image service answered 502", 10L, 20L), (entry.Reason, entry.Credits, entry.BalanceAfter));
        Assert.Equal(20, (await Ledger.BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task Replays_of_a_settled_request_charge_nothing_more()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 50, "test funding");

        var charged = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.RagDocument, 5, 3, "doc-1");
        var replayed = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.RagDocument, 5, 3, "doc-1");
        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.RagDocument, 5, 3, "doc-1");
        var viaHold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.VoiceInteraction, 2, 3, "voice-1");
        await Ledger.SettleAsync(viaHold.ReservationId!.Value);
        var chargeAfterSettle = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.VoiceInteraction, 2, 3, "voice-1");

        Assert.Equal(ChargeStatus.Charged, charged.Status);
        Assert.Equal((ChargeStatus.Replayed, 5L, charged.EntryId), (replayed.Status, replayed.Credits, replayed.EntryId));
        Assert.Equal((ReservationStatus.AlreadyCharged, 5L), (hold.Status, hold.Credits));
        Assert.Equal((ChargeStatus.Replayed, 2L), (chargeAfterSettle.Status, chargeAfterSettle.Credits));
        Assert.Equal(43, (await Ledger.BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task A_direct_charge_of_a_held_request_id_releases_the_hold_at_settle()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 50, "test funding");

        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "mixed");
        await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "mixed");
        var settled = await Ledger.SettleAsync(hold.ReservationId!.Value);

        Assert.Equal(SettleStatus.AlreadyCharged, settled.Status);
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((48L, 0L), (balance.Balance, balance.Reserved));
        Assert.Equal(1, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.Kind == LedgerEntryKind.Charge)));
    }

    [Fact]
    public async Task Holds_are_spoken_for_so_a_charge_cannot_spend_them_and_a_settle_cannot_exceed_them()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 10, "test funding");

        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 8, 3, "long-answer");
        var tooMuch = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 4, 3, "other");
        var fits = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "small");
        var over = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Ledger.SettleAsync(hold.ReservationId!.Value, actualCredits: 9));
        var exact = await Ledger.SettleAsync(hold.ReservationId!.Value, actualCredits: 8);

        Assert.Equal((ChargeStatus.Refused, CreditRefusal.InsufficientCredits, 2L), (tooMuch.Status, tooMuch.Refusal, tooMuch.Available));
        Assert.Equal((ChargeStatus.Charged, 0L), (fits.Status, fits.Available));
        Assert.Contains("0–8", over.Message);
        Assert.Equal((SettleStatus.Settled, 0L), (exact.Status, exact.Available));
        Assert.Equal(0, (await Ledger.BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task An_organization_never_funded_is_refused_not_overdrawn()
    {
        var subscription = await _bed.AddSubscriptionAsync();

        var charge = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 1, 3, "first");
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);

        Assert.Equal((ChargeStatus.Refused, CreditRefusal.InsufficientCredits), (charge.Status, charge.Refusal));
        Assert.False(balance.Exists);
    }

    [Fact]
    public async Task A_free_action_is_held_and_charged_at_zero_even_for_an_organization_never_funded()
    {
        var subscription = await _bed.AddSubscriptionAsync();

        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free-hold");
        var settled = await Ledger.SettleAsync(hold.ReservationId!.Value);
        var charges = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => Task.Run(() =>
            Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ImageGeneration, 0, 3, $"free-{i}"))));
        var replay = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ImageGeneration, 0, 3, "free-0");
        var paid = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 1, 3, "paid");

        Assert.Equal((ReservationStatus.Held, 0L), (hold.Status, hold.Credits));
        Assert.Equal((SettleStatus.Settled, 0L), (settled.Status, settled.Credits));
        Assert.All(charges, c => Assert.Equal((ChargeStatus.Charged, 0L), (c.Status, c.Credits)));
        Assert.Equal(ChargeStatus.Replayed, replay.Status);
        Assert.Equal((ChargeStatus.Refused, CreditRefusal.InsufficientCredits), (paid.Status, paid.Refusal));
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((true, 0L, 0L), (balance.Exists, balance.Balance, balance.Reserved));
        var entries = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.SubscriptionId == subscription.Id && e.Kind == LedgerEntryKind.Charge).Select(e => e.Credits).ToListAsync());
        Assert.Equal(Enumerable.Repeat(0L, 21), entries);
    }

    [Fact]
    public async Task A_free_action_is_served_while_holds_exceed_a_lowered_balance_but_never_for_a_subscription_not_servable()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var ended = await _bed.AddSubscriptionAsync(customer: subscription.CustomerId, state: SubscriptionState.Terminated);
        await Ledger.GrantAsync(subscription.CustomerId, 10, "test funding");
        await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 10, 3, "in-flight");
        // Waldur-funded balances can drop below the holds already taken (the organization's money was lowered).
        await _bed.QueryAsync(db => db.CreditAccounts.Where(a => a.CustomerId == subscription.CustomerId).ExecuteUpdateAsync(set => set.SetProperty(a => a.Balance, 4)));

        var free = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free");
        var freeCharge = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free-charge");
        var paid = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 1, 3, "paid");
        var endedHold = await Ledger.ReserveAsync(ended.CustomerId, ended.Id, ended.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free");
        var endedCharge = await Ledger.ChargeAsync(ended.CustomerId, ended.Id, ended.OfferingUuid, ActionClass.ChatMessage, 0, 3, "free-charge");

        Assert.Equal(ReservationStatus.Held, free.Status);
        Assert.Equal(ChargeStatus.Charged, freeCharge.Status);
        Assert.Equal(CreditRefusal.InsufficientCredits, paid.Refusal);
        Assert.Equal((ReservationStatus.Refused, CreditRefusal.SubscriptionNotServable), (endedHold.Status, endedHold.Refusal));
        Assert.Equal((ChargeStatus.Refused, CreditRefusal.SubscriptionNotServable), (endedCharge.Status, endedCharge.Refusal));
    }

    [Fact]
    public async Task The_balance_is_shared_by_every_project_and_subscription_of_the_organization()
    {
        var first = await _bed.AddSubscriptionAsync();
        var second = await _bed.AddSubscriptionAsync(customer: first.CustomerId);
        var stranger = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(first.CustomerId, 10, "test funding");

        var a = await Ledger.ChargeAsync(first.CustomerId, first.Id, first.OfferingUuid, ActionClass.ImageGeneration, 6, 3, "same-id");
        var b = await Ledger.ChargeAsync(second.CustomerId, second.Id, second.OfferingUuid, ActionClass.ChatMessage, 4, 3, "same-id");
        var c = await Ledger.ChargeAsync(second.CustomerId, second.Id, second.OfferingUuid, ActionClass.ChatMessage, 1, 3, "another");
        var foreign = await Ledger.ChargeAsync(first.CustomerId, stranger.Id, stranger.OfferingUuid, ActionClass.ChatMessage, 1, 3, "not-yours");

        Assert.Equal(ChargeStatus.Charged, a.Status);
        Assert.Equal(ChargeStatus.Charged, b.Status);
        Assert.Equal((ChargeStatus.Refused, CreditRefusal.InsufficientCredits), (c.Status, c.Refusal));
        Assert.Equal((ChargeStatus.Refused, CreditRefusal.SubscriptionNotServable), (foreign.Status, foreign.Refusal));
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task Paused_or_downscaled_resources_are_refused_until_waldur_restores_them(bool paused, bool downscaled)
    {
        // The same organization in Waldur and here: a resource under another one would move the subscription there.
        var customer = Guid.NewGuid();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, customer: customer);
        var resource = _bed.Waldur.ResourceOf(order);
        var subscription = await _bed.AddSubscriptionAsync(customer: customer, resource: resource);
        await Ledger.GrantAsync(subscription.CustomerId, 10, "test funding");
        var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "in-flight");
        var sync = _bed.Services.GetRequiredService<ResourceStateSync>();

        _bed.Waldur.SetResourceFlags(resource, paused, downscaled);
        await sync.SyncAsync(resource, CancellationToken.None);
        var refusedCharge = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "while-paused");
        var refusedHold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "while-paused-2");
        // Work that started before the pause is still settled: it was done.
        var settled = await Ledger.SettleAsync(hold.ReservationId!.Value);

        _bed.Waldur.SetResourceFlags(resource, false, false);
        await sync.SyncAsync(resource, CancellationToken.None);
        var afterRestore = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "while-paused");

        Assert.Equal((ChargeStatus.Refused, CreditRefusal.SubscriptionNotServable), (refusedCharge.Status, refusedCharge.Refusal));
        Assert.Equal((ReservationStatus.Refused, CreditRefusal.SubscriptionNotServable), (refusedHold.Status, refusedHold.Refusal));
        Assert.Equal(SettleStatus.Settled, settled.Status);
        Assert.Equal(ChargeStatus.Charged, afterRestore.Status);
        Assert.Equal(6, (await Ledger.BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task Concurrent_charges_of_servable_and_unservable_subscriptions_replays_and_new_requests_are_told_apart()
    {
        var active = await _bed.AddSubscriptionAsync();
        var paused = await _bed.AddSubscriptionAsync(customer: active.CustomerId);
        await _bed.QueryAsync(async db =>
        {
            (await db.Subscriptions.FindAsync(paused.Id))!.Paused = true;
            return await db.SaveChangesAsync();
        });
        await Ledger.GrantAsync(active.CustomerId, 1000, "test funding");
        await Ledger.ChargeAsync(active.CustomerId, active.Id, active.OfferingUuid, ActionClass.ChatMessage, 2, 3, "mixed-1");

        var results = await Task.WhenAll(Enumerable.Range(0, 300).Select(i => Task.Run(() => i % 3 == 0
            ? Ledger.ChargeAsync(paused.CustomerId, paused.Id, paused.OfferingUuid, ActionClass.ChatMessage, 2, 3, $"paused-{i}")
            : Ledger.ChargeAsync(active.CustomerId, active.Id, active.OfferingUuid, ActionClass.ChatMessage, 2, 3, $"mixed-{i % 150}"))));

        Assert.All(results.Where((_, i) => i % 3 == 0), r => Assert.Equal(CreditRefusal.SubscriptionNotServable, r.Refusal));
        var forActive = results.Where((_, i) => i % 3 != 0).ToList();
        // 100 distinct request ids (one charged before), each sent twice: 99 new charges, the rest replays.
        Assert.Equal(99, forActive.Count(r => r.Status == ChargeStatus.Charged));
        Assert.Equal(101, forActive.Count(r => r.Status == ChargeStatus.Replayed));
        Assert.Equal(1000 - 200, (await Ledger.BalanceAsync(active.CustomerId)).Balance);
        Assert.Equal(100, await _bed.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.Kind == LedgerEntryKind.Charge)));
    }

    [Theory]
    [InlineData(SubscriptionState.Provisioning)]
    [InlineData(SubscriptionState.Terminating)]
    [InlineData(SubscriptionState.Terminated)]
    public async Task Subscriptions_that_are_not_active_are_not_charged(SubscriptionState state)
    {
        var subscription = await _bed.AddSubscriptionAsync(state: state);
        await Ledger.GrantAsync(subscription.CustomerId, 10, "test funding");

        var charge = await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "r");

        Assert.Equal(CreditRefusal.SubscriptionNotServable, charge.Refusal);
    }

    [Fact]
    public async Task Holds_nobody_settles_are_released_when_they_expire()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 10, "test funding");
        var abandoned = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 4, 3, "crashed");
        _bed.Clock!.Advance(TimeSpan.FromMinutes(10));
        var recent = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "running");

        _bed.Clock.Advance(TimeSpan.FromMinutes(6));
        var released = await Ledger.ReleaseExpiredAsync();

        Assert.Equal(1, released);
        Assert.Equal(SettleStatus.AlreadyReleased, (await Ledger.SettleAsync(abandoned.ReservationId!.Value)).Status);
        Assert.Equal(SettleStatus.Settled, (await Ledger.SettleAsync(recent.ReservationId!.Value)).Status);
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((8L, 0L), (balance.Balance, balance.Reserved));
        Assert.Contains(await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.Kind == LedgerEntryKind.Release).Select(e => e.Reason).ToListAsync()), r => r!.Contains("expired"));
    }

    [Fact]
    public async Task A_hold_with_its_own_lifetime_outlives_the_default_expiry_and_is_released_after_its_own()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 10, "test funding");
        var parse = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.RagDocument, 5, 3, "long-parse", lifetime: TimeSpan.FromHours(3));
        var message = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "message");

        _bed.Clock!.Advance(TimeSpan.FromMinutes(16));
        Assert.Equal(1, await Ledger.ReleaseExpiredAsync());
        Assert.Equal(SettleStatus.AlreadyReleased, (await Ledger.SettleAsync(message.ReservationId!.Value)).Status);
        Assert.Equal((10L, 5L), await BalanceAndReservedAsync(subscription.CustomerId));

        _bed.Clock.Advance(TimeSpan.FromMinutes(60));
        Assert.Equal(0, await Ledger.ReleaseExpiredAsync());
        var settled = await Ledger.SettleAsync(parse.ReservationId!.Value);
        Assert.Equal((SettleStatus.Settled, 5L), (settled.Status, settled.Credits));
        Assert.Equal((5L, 0L), await BalanceAndReservedAsync(subscription.CustomerId));

        var late = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.RagDocument, 5, 3, "later-parse", lifetime: TimeSpan.FromHours(3));
        _bed.Clock.Advance(TimeSpan.FromHours(3) - TimeSpan.FromSeconds(1));
        Assert.Equal(0, await Ledger.ReleaseExpiredAsync());
        _bed.Clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(1, await Ledger.ReleaseExpiredAsync());
        Assert.Equal(SettleStatus.AlreadyReleased, (await Ledger.SettleAsync(late.ReservationId!.Value)).Status);
        Assert.Equal((5L, 0L), await BalanceAndReservedAsync(subscription.CustomerId));
        Assert.Equal([5L], await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.CustomerId == subscription.CustomerId && e.Kind == LedgerEntryKind.Charge).Select(e => e.Credits).ToListAsync()));
    }

    protected async Task<(long Balance, long Reserved)> BalanceAndReservedAsync(Guid customer)
    {
        var balance = await Ledger.BalanceAsync(customer);
        return (balance.Balance, balance.Reserved);
    }

    [Fact]
    public async Task A_storm_of_holds_settled_and_released_at_random_adds_up_exactly()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 500, "test funding");
        var charged = 0L;

        await Task.WhenAll(Enumerable.Range(0, 400).Select(i => Task.Run(async () =>
        {
            var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 3, 3, $"storm-{i}");
            if (!hold.IsHeld)
            {
                return;
            }

            switch (i % 3)
            {
                case 0:
                    Interlocked.Add(ref charged, (await Ledger.SettleAsync(hold.ReservationId!.Value)).Credits);
                    break;
                case 1:
                    Interlocked.Add(ref charged, (await Ledger.SettleAsync(hold.ReservationId!.Value, 1)).Credits);
                    break;
                default:
                    await Ledger.ReleaseAsync(hold.ReservationId!.Value);
                    break;
            }
        })));

        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        var ledgerCharges = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.Kind == LedgerEntryKind.Charge).SumAsync(e => e.Credits));
        Assert.Equal(0, balance.Reserved);
        Assert.Equal(500 - charged, balance.Balance);
        Assert.Equal(charged, ledgerCharges);
        Assert.True(charged > 0);
    }

    [Fact]
    public async Task Holds_settles_and_releases_of_many_organizations_at_once_add_up_exactly_for_each()
    {
        // On PostgreSQL these meet in shared batches (group commit) that lock several organizations each.
        var subscriptions = await FundedSubscriptionsAsync(8, credits: 60);

        var charged = new long[subscriptions.Count];
        await Task.WhenAll(Enumerable.Range(0, 480).Select(i => Task.Run(async () =>
        {
            var owner = i % subscriptions.Count;
            var subscription = subscriptions[owner];
            var hold = await Ledger.ReserveAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, $"many-{i}");
            if (!hold.IsHeld)
            {
                return;
            }

            if (i / subscriptions.Count % 4 == 3)
            {
                await Ledger.ReleaseAsync(hold.ReservationId!.Value);
            }
            else
            {
                Interlocked.Add(ref charged[owner], (await Ledger.SettleAsync(hold.ReservationId!.Value)).Credits);
            }
        })));

        for (var owner = 0; owner < subscriptions.Count; owner++)
        {
            var customer = subscriptions[owner].CustomerId;
            var balance = await Ledger.BalanceAsync(customer);
            var entries = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.CustomerId == customer && e.Kind == LedgerEntryKind.Charge).SumAsync(e => e.Credits));
            Assert.Equal((0L, 60 - charged[owner], charged[owner]), (balance.Reserved, balance.Balance, entries));
            Assert.True(charged[owner] > 0);
        }
    }

    [Fact]
    public async Task Grants_add_once_per_request_id_and_explain_themselves()
    {
        var customer = Guid.NewGuid();

        var first = await Ledger.GrantAsync(customer, 300, "welcome credits", "grant-1");
        var again = await Ledger.GrantAsync(customer, 300, "welcome credits", "grant-1");
        var second = await Ledger.GrantAsync(customer, 50, "top-up");

        Assert.True(first.Granted);
        Assert.False(again.Granted);
        Assert.Equal(first.EntryId, again.EntryId);
        Assert.Equal(350, second.Balance);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Ledger.GrantAsync(customer, 0, "nothing"));
        await Assert.ThrowsAsync<ArgumentException>(() => Ledger.GrantAsync(customer, 5, " "));
        var grants = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.Kind == LedgerEntryKind.Grant).OrderBy(e => e.BalanceAfter).ToListAsync());
        Assert.Equal([(300L, "welcome credits"), (50L, "top-up")], grants.Select(g => (g.Credits, g.Reason!)));
    }

    [Fact]
    public async Task Concurrent_first_grants_of_a_new_organization_both_count()
    {
        var customer = Guid.NewGuid();

        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => Task.Run(() => Ledger.GrantAsync(customer, 10, "parallel", $"g-{i}"))));

        Assert.Equal(100, (await Ledger.BalanceAsync(customer)).Balance);
    }

    [Fact]
    public async Task The_price_book_of_the_offering_prices_each_action_class()
    {
        var prices = _bed.Services.GetRequiredService<PriceBooks>();
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 100, "test funding");

        var quotes = Enum.GetValues<ActionClass>().Where(a => a != ActionClass.AutomationRun).Select(a => prices.Quote(_bed.Offering, a)).ToList();
        foreach (var quote in quotes)
        {
            await Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, quote.Action, quote.Credits, quote.PriceBookVersion, "priced-" + quote.Action);
        }

        Assert.Equal([2L, 5L, 10L, 2L], quotes.Select(q => q.Credits));
        Assert.All(quotes, q => Assert.Equal(TestCatalogue.PriceBookVersion, q.PriceBookVersion));
        Assert.Throws<InvalidOperationException>(() => prices.Quote(_bed.Offering, ActionClass.AutomationRun));
        Assert.Throws<InvalidOperationException>(() => prices.Quote(Guid.NewGuid(), ActionClass.ChatMessage));
        var entries = await _bed.QueryAsync(db => db.LedgerEntries.Where(e => e.Kind == LedgerEntryKind.Charge).ToListAsync());
        Assert.Equal(["chat_credits", "image_credits", "rag_credits", "voice_credits"], entries.Select(e => e.Component!).Order());
        Assert.All(entries, e => Assert.Equal(TestCatalogue.PriceBookVersion, e.PriceBookVersion));
        Assert.Equal(81, (await Ledger.BalanceAsync(subscription.CustomerId)).Balance);
    }

    [Fact]
    public async Task The_chat_pipeline_holds_the_offerings_chat_price_and_settles_or_releases_it()
    {
        var chat = _bed.Services.GetRequiredService<IChatCredits>();
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 5, "test funding");

        var answered = (await chat.HoldAsync(subscription, "chat-1", null, CancellationToken.None)).Hold;
        var charged = await chat.SettleAsync(answered!, CancellationToken.None);
        var replay = (await chat.HoldAsync(subscription, "chat-1", null, CancellationToken.None)).Hold;
        var replayCharged = await chat.SettleAsync(replay!, CancellationToken.None);
        var failed = (await chat.HoldAsync(subscription, "chat-2", null, CancellationToken.None)).Hold;
        await chat.ReleaseAsync(failed!, CancellationToken.None);
        var last = await chat.HoldAsync(subscription, "chat-3", null, CancellationToken.None);
        var broke = await chat.HoldAsync(subscription, "chat-4", null, CancellationToken.None);

        Assert.IsType<LedgerChatCredits>(chat);
        Assert.Equal((2L, 2L), (answered!.Credits, charged));
        Assert.Equal(0, replayCharged);
        Assert.NotNull(last.Hold);
        Assert.Equal((null, CreditRefusal.InsufficientCredits), (broke.Hold, broke.Refusal));
        Assert.Equal(subscription.Version, last.SubscriptionVersion);
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((3L, 2L, 1L), (balance.Balance, balance.Reserved, balance.Available));
    }

    [Fact]
    public async Task A_hold_authorized_by_a_key_is_refused_once_that_key_is_revoked_or_regenerated_and_reports_the_subscriptions_version()
    {
        var chat = _bed.Services.GetRequiredService<IChatCredits>();
        var keys = _bed.Services.GetRequiredService<CmpWaldurAdapter.ApiKeys.ApiKeyService>();
        var subscription = await _bed.AddSubscriptionAsync();
        await Ledger.GrantAsync(subscription.CustomerId, 100, "test funding");
        var first = await keys.CreateAsync(subscription.Id, CmpWaldurAdapter.ApiKeys.ApiKeyKind.Secret, "first", CancellationToken.None);
        var second = await keys.CreateAsync(subscription.Id, CmpWaldurAdapter.ApiKeys.ApiKeyKind.Secret, "second", CancellationToken.None);
        ApiKeyProof Proof(CmpWaldurAdapter.ApiKeys.CreatedKey key) => new(key.Key.Id, CmpWaldurAdapter.ApiKeys.ApiKeyFormat.Hash(key.Plaintext));

        var live = await chat.HoldAsync(subscription, "key-1", Proof(first), CancellationToken.None);
        await keys.RevokeAsync(subscription.Id, first.Key.Id, CancellationToken.None);
        var revoked = await chat.HoldAsync(subscription, "key-2", Proof(first), CancellationToken.None);
        var regenerated = await keys.RegenerateAsync(subscription.Id, second.Key.Id, CancellationToken.None);
        var oldValue = await chat.HoldAsync(subscription, "key-3", Proof(second), CancellationToken.None);
        var newValue = await chat.HoldAsync(subscription, "key-4", Proof(regenerated!), CancellationToken.None);
        var otherSubscription = await _bed.AddSubscriptionAsync(customer: subscription.CustomerId);
        var wrongSubscription = await chat.HoldAsync(otherSubscription, "key-5", Proof(regenerated!), CancellationToken.None);

        Assert.NotNull(live.Hold);
        Assert.Equal((null, CreditRefusal.KeyRevoked), (revoked.Hold, revoked.Refusal));
        Assert.Equal((null, CreditRefusal.KeyRevoked), (oldValue.Hold, oldValue.Refusal));
        Assert.NotNull(newValue.Hold);
        Assert.Equal((null, CreditRefusal.KeyRevoked), (wrongSubscription.Hold, wrongSubscription.Refusal));
        Assert.Equal(subscription.Version, newValue.SubscriptionVersion);
        var balance = await Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((100L, 4L), (balance.Balance, balance.Reserved));
    }

    [Fact]
    public async Task The_database_itself_refuses_a_negative_balance()
    {
        var customer = Guid.NewGuid();
        await Ledger.GrantAsync(customer, 5, "test funding");

        await using var db = await _bed.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        var refused = await Record.ExceptionAsync(() => db.CreditAccounts.Where(a => a.CustomerId == customer).ExecuteUpdateAsync(s => s.SetProperty(a => a.Balance, -1)));

        Assert.NotNull(refused);
    }

    private Task<ChargeResult[]> ChargeAllAsync(Subscription subscription, IReadOnlyList<string> requests) =>
        Task.WhenAll(requests.Select(request => Task.Run(() =>
            Ledger.ChargeAsync(subscription.CustomerId, subscription.Id, subscription.OfferingUuid, ActionClass.ChatMessage, 2, TestCatalogue.PriceBookVersion, request))));
}
