using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Knowledge;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace CmpWaldurAdapter.IntegrationTests.Persistence;

public sealed class PersistenceOnSqliteTests() : PersistenceTests(DatabaseProvider.Sqlite)
{
    // SQLite only: PostgreSQL's migration lock is a session's advisory lock, released when the session dies.
    [Fact]
    public async Task A_migration_lock_left_by_a_process_killed_while_migrating_does_not_stop_the_next_migration()
    {
        await using (var context = await Dbs.CreateDbContextAsync())
        {
            var migrations = context.Database.GetMigrations().ToList();
            await context.GetService<IMigrator>().MigrateAsync(migrations[^2]);
            // What EF Core leaves when the process dies between taking its lock and releasing it.
            await context.Database.ExecuteSqlRawAsync("""CREATE TABLE IF NOT EXISTS "__EFMigrationsLock" ("Id" INTEGER NOT NULL CONSTRAINT "PK___EFMigrationsLock" PRIMARY KEY, "Timestamp" TEXT NOT NULL)""");
            await context.Database.ExecuteSqlRawAsync("""INSERT OR REPLACE INTO "__EFMigrationsLock" ("Id", "Timestamp") VALUES (1, {0})""",
                (DateTimeOffset.UtcNow - DatabaseMigrations.StaleMigrationLock - TimeSpan.FromMinutes(1)).ToString("yyyy-MM-dd HH:mm:ss.FFFFFFFzzz", System.Globalization.CultureInfo.InvariantCulture));
        }

        var applied = await Services.MigrateAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Single(applied);
        await using var db = await Dbs.CreateDbContextAsync();
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
    }
}

public sealed class PersistenceOnPostgresTests() : PersistenceTests(DatabaseProvider.Postgres);

/// <summary>The guarantees the adapter takes from its database, proven on PostgreSQL and on SQLite alike.</summary>
public abstract class PersistenceTests(DatabaseProvider provider) : IAsyncLifetime
{
    private readonly WaldurFake _waldur = new();
    private readonly CapturedLogs _logs = new();
    private readonly BeforeStatement _statements = new();
    private TestDatabase _database = null!;
    private IHost _host = null!;

    protected IServiceProvider Services => _host.Services;

    protected IDbContextFactory<AdapterDbContext> Dbs => Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>();

    public async Task InitializeAsync()
    {
        _database = await TestDatabase.CreateAsync(provider);
        // The host migrates the fresh database as it starts, as `db migrate` (and, on SQLite, `serve`) does.
        _host = await AdapterTestHost.StartServicesAsync(AdapterTestHost.Settings(_waldur, _database), _logs, services => services.AddDatabaseInterceptor(provider, _statements));
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        _waldur.Dispose();
        await _database.DisposeAsync();
    }

    [Fact]
    public async Task Migrations_create_the_schema_once_and_then_have_nothing_left_to_apply()
    {
        var again = await Services.MigrateAsync(CancellationToken.None);

        Assert.Empty(again);
        await using var db = await Dbs.CreateDbContextAsync();
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.NotEmpty(await db.Database.GetAppliedMigrationsAsync());
        Assert.False(await db.Subscriptions.AnyAsync());
    }

    [Fact]
    public void Migrating_a_fresh_database_logs_no_error()
    {
        // An operator's first install must not start with errors (alerts fire on them): EF Core's failed read of a
        // history table it has not created yet used to log two.
        var errors = _logs.Events.Where(e => e.Level >= Serilog.Events.LogEventLevel.Error).Select(e => e.RenderMessage()).ToList();

        Assert.Empty(errors);
    }

    [Fact]
    public async Task Migrating_follows_documents_left_with_a_run_state_ragflow_could_not_name_as_parses_still_running()
    {
        var (customer, workspace) = await SeedTenantAsync();
        var subscription = NewSubscription(Guid.NewGuid(), customer, workspace);
        await using (var db = await Dbs.CreateDbContextAsync())
        {
            db.Subscriptions.Add(subscription);
            await db.SaveChangesAsync();
        }

        foreach (var name in new[] { "a-named.md", "b-scheduled.md", "c-zero.md", "d-three.md", "e-unknown.md" })
        {
            await Dbs.ParsedDocumentAsync(subscription.Id, name);
        }

        await using var context = await Dbs.CreateDbContextAsync();
        var migrator = context.GetService<IMigrator>();
        var migrations = context.Database.GetMigrations().ToList();
        var fix = migrations.FindIndex(m => m.EndsWith("_UnknownParseStatesFollowed", StringComparison.Ordinal));
        await migrator.MigrateAsync(migrations[fix - 1]);
        // As earlier versions stored them: the state RAGFlow sent, unnamed; "3" was a parse done and never charged.
        foreach (var (name, run) in new[] { ("b-scheduled.md", "5"), ("c-zero.md", "0"), ("d-three.md", "3"), ("e-unknown.md", "7") })
        {
            await context.KnowledgeDocuments.Where(d => d.Name == name).ExecuteUpdateAsync(set => set
                .SetProperty(d => d.Status, run).SetProperty(d => d.ChargedAt, (DateTimeOffset?)null).SetProperty(d => d.CreditsCharged, 0));
        }

        await migrator.MigrateAsync();

        var rows = await context.KnowledgeDocuments.AsNoTracking().OrderBy(d => d.Name).ToListAsync();
        Assert.Equal([ParseStates.Done, ParseStates.Running, ParseStates.Unstart, ParseStates.Done, ParseStates.Running], rows.Select(d => d.Status));
        // The done parse the old poll missed is recorded as charged nothing, so the poll never charges it now.
        Assert.Equal((0L, true), (rows[3].CreditsCharged, rows[3].ChargedAt is not null));
        Assert.Null(rows[2].ChargedAt);
    }

    [Fact]
    public async Task Migrating_dates_an_alert_amount_set_before_its_date_was_kept_by_its_last_settings_change_and_a_downgrade_keeps_the_amounts()
    {
        var (customer, workspace) = await SeedTenantAsync();
        var withAlert = NewSubscription(Guid.NewGuid(), customer, workspace);
        var withoutAlert = NewSubscription(Guid.NewGuid(), customer, workspace);
        var changed = new DateTimeOffset(2026, 10, 31, 23, 59, 0, TimeSpan.Zero);
        await using (var db = await Dbs.CreateDbContextAsync())
        {
            db.Subscriptions.AddRange(withAlert, withoutAlert);
            db.BuyerWebSettings.Add(new CmpWaldurAdapter.Web.BuyerWebSettings { SubscriptionId = withAlert.Id, MonthlySpendAlertCredits = 500, UpdatedAt = changed });
            db.BuyerWebSettings.Add(new CmpWaldurAdapter.Web.BuyerWebSettings { SubscriptionId = withoutAlert.Id, UpdatedAt = changed });
            await db.SaveChangesAsync();
        }

        await using var context = await Dbs.CreateDbContextAsync();
        var migrator = context.GetService<IMigrator>();
        var migrations = context.Database.GetMigrations().ToList();
        // Down past every later change of buyer_web_settings (on SQLite each rebuilds the table from an earlier model).
        await migrator.MigrateAsync(migrations[migrations.FindIndex(m => m.EndsWith("_SpendAlerts", StringComparison.Ordinal))]);
        await migrator.MigrateAsync();

        var rows = await context.BuyerWebSettings.AsNoTracking().ToDictionaryAsync(s => s.SubscriptionId);
        Assert.Equal((500L, (DateTimeOffset?)changed), (rows[withAlert.Id].MonthlySpendAlertCredits, rows[withAlert.Id].MonthlySpendAlertSetAt));
        Assert.Equal(((long?)null, (DateTimeOffset?)null), (rows[withoutAlert.Id].MonthlySpendAlertCredits, rows[withoutAlert.Id].MonthlySpendAlertSetAt));
    }

    [Fact]
    public async Task Migrating_keeps_the_ledger_request_id_idempotency_keys_made_before_used()
    {
        await using var context = await Dbs.CreateDbContextAsync();
        var migrator = context.GetService<IMigrator>();
        var migrations = context.Database.GetMigrations().ToList();
        await migrator.MigrateAsync(migrations[migrations.FindIndex(m => m.EndsWith("_IdempotencyLedgerRequestIds", StringComparison.Ordinal)) - 1]);
        var (id, keyId, now) = (Guid.NewGuid(), Guid.NewGuid(), DateTimeOffset.UtcNow);
        // An entry of an earlier version, whose attempts held and charged under idem:{key id}:{Idempotency-Key}.
        await context.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO idempotent_requests (id, api_key_id, "key", request_hash, completed, status_code, created_at, expires_at)
            VALUES ({id}, {keyId}, {"runs:K-1"}, {"hash"}, {false}, {0}, {now}, {now.AddHours(24)})
            """);

        await migrator.MigrateAsync();

        var entry = await context.IdempotentRequests.AsNoTracking().SingleAsync(r => r.Id == id);
        Assert.Equal($"idem:{keyId:N}:runs:K-1", entry.LedgerRequestId);
    }

    [Fact]
    public async Task Migrating_moves_run_idempotency_keys_made_before_into_their_own_scope()
    {
        await using var context = await Dbs.CreateDbContextAsync();
        var migrator = context.GetService<IMigrator>();
        var migrations = context.Database.GetMigrations().ToList();
        await migrator.MigrateAsync(migrations[migrations.FindIndex(m => m.EndsWith("_IdempotencyScopes", StringComparison.Ordinal)) - 1]);
        var (run, chat, keyId, now) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), DateTimeOffset.UtcNow);
        // Run keys were stored as "runs:" + the key, chat keys as sent.
        foreach (var (id, key) in new[] { (run, "runs:K-1"), (chat, "K-1") })
        {
            await context.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO idempotent_requests (id, api_key_id, "key", request_hash, completed, status_code, created_at, expires_at, ledger_request_id)
                VALUES ({id}, {keyId}, {key}, {"hash"}, {false}, {0}, {now}, {now.AddHours(24)}, {$"idem:{id:N}"})
                """);
        }

        await migrator.MigrateAsync();

        var entries = await context.IdempotentRequests.AsNoTracking().Where(r => r.ApiKeyId == keyId).ToDictionaryAsync(r => r.Id, r => (r.Scope, r.Key));
        Assert.Equal((CmpWaldurAdapter.Chat.IdempotencyStore.RunsScope, "K-1"), entries[run]);
        Assert.Equal((CmpWaldurAdapter.Chat.IdempotencyStore.ChatScope, "K-1"), entries[chat]);
    }

    [Fact]
    public async Task A_resource_can_have_only_one_subscription()
    {
        var resource = Guid.NewGuid();
        var (customer, workspace) = await SeedTenantAsync();

        await using var first = await Dbs.CreateDbContextAsync();
        await using var second = await Dbs.CreateDbContextAsync();
        first.Subscriptions.Add(NewSubscription(resource, customer, workspace));
        second.Subscriptions.Add(NewSubscription(resource, customer, workspace));
        await first.SaveChangesAsync();

        var refused = await Assert.ThrowsAsync<DbUpdateException>(() => second.SaveChangesAsync());
        Assert.True(DbErrors.IsUniqueViolation(refused));
    }

    /// <summary>A duplicate announcement is the usual case (a poll finding what an event announced), not an error to log.</summary>
    [Fact]
    public async Task Concurrent_announcements_of_the_same_order_and_state_make_one_inbox_row_and_log_nothing()
    {
        var inbox = Services.GetRequiredService<OrderInbox>();
        var order = Guid.NewGuid();

        var results = await Task.WhenAll(Enumerable.Range(0, 24).Select(i =>
            Task.Run(() => inbox.EnqueueAsync(order, i % 3 == 0 ? "executing" : "pending-provider", "event", refeed: false, CancellationToken.None))));

        Assert.Equal(2, results.Count(inserted => inserted));
        await using var db = await Dbs.CreateDbContextAsync();
        Assert.Equal(2, await db.OrderInbox.CountAsync(e => e.OrderUuid == order));
        var entry = await db.OrderInbox.SingleAsync(e => e.OrderUuid == order && e.OrderState == "executing");
        Assert.Equal((InboxStatus.Pending, "event", 0), (entry.Status, entry.Source, entry.Attempts));
        Assert.DoesNotContain(_logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }

    [Fact]
    public async Task Deferred_orders_come_due_again_and_completed_ones_stay_done_until_refed()
    {
        var inbox = Services.GetRequiredService<OrderInbox>();
        var early = Guid.NewGuid();
        var later = Guid.NewGuid();
        await inbox.EnqueueAsync(early, "pending-provider", "event", false, CancellationToken.None);
        await inbox.EnqueueAsync(later, "pending-provider", "poll", false, CancellationToken.None);

        Assert.Equal([early, later], await inbox.DueAsync(10, [], CancellationToken.None));
        Assert.Equal([later], await inbox.DueAsync(10, [early], CancellationToken.None)); // the worker leaves out orders already at work

        await inbox.DeferAsync(early, "Waldur answered 503", TimeSpan.FromMinutes(5), CancellationToken.None);
        Assert.Equal([later], await inbox.DueAsync(10, [], CancellationToken.None));

        await inbox.CompleteAsync(later, DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Empty(await inbox.DueAsync(10, [], CancellationToken.None));
        Assert.False(await inbox.EnqueueAsync(later, "pending-provider", "poll", refeed: false, CancellationToken.None));

        Assert.True(await inbox.EnqueueAsync(early, "pending-provider", "refeed", refeed: true, CancellationToken.None));
        Assert.True(await inbox.EnqueueAsync(later, "pending-provider", "refeed", refeed: true, CancellationToken.None));
        Assert.Equal(2, (await inbox.DueAsync(10, [], CancellationToken.None)).Count);

        await using var db = await Dbs.CreateDbContextAsync();
        var deferred = await db.OrderInbox.SingleAsync(e => e.OrderUuid == early);
        Assert.Equal("Waldur answered 503", deferred.LastError);
    }

    [Fact]
    public async Task Backoff_grows_with_each_failed_attempt()
    {
        var inbox = Services.GetRequiredService<OrderInbox>();
        var order = Guid.NewGuid();
        await inbox.EnqueueAsync(order, "executing", "event", false, CancellationToken.None);

        var waits = new List<TimeSpan>();
        for (var i = 0; i < 4; i++)
        {
            var before = DateTimeOffset.UtcNow;
            await inbox.DeferAsync(order, "timeout", null, CancellationToken.None);
            await using var db = await Dbs.CreateDbContextAsync();
            var entry = await db.OrderInbox.SingleAsync(e => e.OrderUuid == order);
            waits.Add(entry.NextAttemptAt - before);
            Assert.Equal(i + 1, entry.Attempts);
        }

        // 50 ms doubling (test settings), capped at 400 ms, jitter up to 25 %.
        Assert.InRange(waits[0].TotalMilliseconds, 40, 80);
        Assert.True(waits[2] > waits[0], "later attempts wait longer");
        Assert.InRange(waits[3].TotalMilliseconds, 300, 520);
    }

    [Fact]
    public async Task Many_processes_record_an_order_once_and_only_one_gets_its_lease_until_it_expires()
    {
        var order = Guid.NewGuid();
        var clock = Services.GetRequiredService<TimeProvider>();
        var options = Services.GetRequiredService<IOptionsMonitor<OrdersOptions>>();
        var replicas = Enumerable.Range(0, 16).Select(_ => new OrderLeases(Dbs, new AdapterInstance(), clock, options, NullLogger<OrderLeases>.Instance)).ToList();
        var (resource, offering) = (Guid.NewGuid(), Guid.NewGuid());
        // Replicas that took the order from the shared inbox at once all record it: one record, and no database error logged.
        await Task.WhenAll(replicas.Select(r => Task.Run(() => r.EnsureRecordAsync(order, OrderType.Create, resource, offering, CancellationToken.None))));
        await using (var recorded = await Dbs.CreateDbContextAsync())
        {
            var record = await recorded.Orders.SingleAsync(o => o.OrderUuid == order);
            Assert.Equal((OrderType.Create, resource, offering, OrderPhase.Received, 0, ""), (record.Type, record.ResourceUuid, record.OfferingUuid, record.Phase, record.Attempts, record.CompletedSteps));
        }

        Assert.DoesNotContain(_logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);

        var won = await Task.WhenAll(replicas.Select(r => Task.Run(() => r.TryAcquireAsync(order, CancellationToken.None))));

        Assert.Equal(1, won.Count(w => w));
        var winner = replicas[Array.IndexOf(won, true)];
        Assert.False(await winner.TryAcquireAsync(order, CancellationToken.None), "a lease is not re-entrant");

        await winner.ReleaseAsync(order);
        Assert.True(await replicas[(Array.IndexOf(won, true) + 1) % replicas.Count].TryAcquireAsync(order, CancellationToken.None));

        await using var db = await Dbs.CreateDbContextAsync();
        await db.Orders.ExecuteUpdateAsync(set => set.SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1)));
        Assert.True(await winner.TryAcquireAsync(order, CancellationToken.None), "an expired lease (a dead holder) can be taken over");
    }

    [Fact]
    public async Task Only_one_of_many_processes_gets_a_named_lease_until_it_is_released_or_expires()
    {
        var clock = Services.GetRequiredService<TimeProvider>();
        var replicas = Enumerable.Range(0, 16).Select(_ => new DatabaseLeases(Dbs, new AdapterInstance(), clock)).ToList();

        // The first claim of a name is an INSERT: the primary key lets one of the racing processes in.
        var won = await Task.WhenAll(replicas.Select(r => Task.Run(() => TakeAsync(r, "sync:a"))));

        var holding = Assert.Single(won, w => w is not null)!;
        var winner = Array.IndexOf(won, holding);
        var other = replicas[(winner + 1) % replicas.Count];
        Assert.Null(await TakeAsync(replicas[winner], "sync:a")); // a lease is not re-entrant
        Assert.NotNull(await TakeAsync(other, "sync:b")); // names are independent

        await other.ReleaseAsync("sync:a", "another-holding"); // not its holding: nothing happens
        Assert.Null(await TakeAsync(other, "sync:a"));
        await replicas[winner].ReleaseAsync("sync:a", holding);
        Assert.NotNull(await TakeAsync(other, "sync:a"));

        // A holder that died: its expired lease is taken over by exactly one process, with one conditional UPDATE.
        await using (var db = await Dbs.CreateDbContextAsync())
        {
            await db.Leases.Where(l => l.Name == "sync:a").ExecuteUpdateAsync(set => set.SetProperty(l => l.ExpiresAt, DateTimeOffset.UtcNow.AddMinutes(-1)));
        }

        var takenOver = await Task.WhenAll(replicas.Select(r => Task.Run(() => TakeAsync(r, "sync:a"))));
        Assert.Single(takenOver, w => w is not null);

        static Task<string?> TakeAsync(DatabaseLeases leases, string name) =>
            leases.TryAcquireWaitingAsync(name, TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None);
    }

    /// <summary>
    /// A taker that finds no row for a name, and loses it to another replica's insert just before its own, is told the
    /// lease is held: no unique violation, which EF Core would log as a database error on every such race.
    /// </summary>
    [Fact]
    public async Task A_taker_that_loses_a_new_name_to_another_replica_at_the_insert_is_refused_with_no_error_logged()
    {
        var leases = Services.GetRequiredService<DatabaseLeases>();
        _statements.Stage(new Regex("""^\s*INSERT INTO "?leases"?""", RegexOptions.IgnoreCase), async () =>
        {
            await using var db = await Dbs.CreateDbContextAsync();
            db.Leases.Add(new DatabaseLease { Name = "sync:new", Owner = "other-replica:holding", ExpiresAt = DateTimeOffset.UtcNow.AddMinutes(5) });
            await db.SaveChangesAsync();
        });

        var taken = await leases.TryAcquireWaitingAsync("sync:new", TimeSpan.FromMinutes(5), TimeSpan.Zero, CancellationToken.None);

        Assert.Equal(1, _statements.Ran);
        Assert.Null(taken);
        await using var check = await Dbs.CreateDbContextAsync();
        Assert.Equal("other-replica:holding", await check.Leases.Where(l => l.Name == "sync:new").Select(l => l.Owner).SingleAsync());
        Assert.DoesNotContain(_logs.Events, e => e.Level >= Serilog.Events.LogEventLevel.Error);
    }

    [Fact]
    public async Task A_held_named_lease_is_renewed_while_held_and_a_holding_whose_lease_was_taken_over_stops_and_fences_out_its_saves()
    {
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero)); // whole seconds: PostgreSQL keeps microseconds
        var leases = new DatabaseLeases(Dbs, new AdapterInstance(), clock);
        var duration = TimeSpan.FromMinutes(3);
        await using var holding = await leases.TryHoldAsync("sync:held", duration, CancellationToken.None);
        Assert.NotNull(holding);

        // A third of the lease on, the holding renews it: work longer than one lease keeps it.
        clock.Advance(TimeSpan.FromMinutes(1));
        var renewed = clock.GetUtcNow() + duration;
        await Eventually.TrueAsync(async () => await ExpiresAtAsync("sync:held") == renewed, TimeSpan.FromSeconds(10), "the lease is renewed");

        // Another process took it over (this one's renewals were lost for a whole lease): the next renewal stops the work.
        await TakeOverAsync("sync:held");
        clock.Advance(TimeSpan.FromMinutes(1));
        await Eventually.TrueAsync(() => holding.Held.IsCancellationRequested, TimeSpan.FromSeconds(10), "the work under the lease is stopped");
        Assert.True(holding.Lost);

        // A save under a lease taken over before any renewal noticed is refused by its fence, and saves nothing.
        await using var other = await leases.TryHoldAsync("sync:other", duration, CancellationToken.None);
        Assert.NotNull(other);
        await TakeOverAsync("sync:other");
        await using (var db = await Dbs.CreateDbContextAsync())
        {
            await using var transaction = await db.Database.BeginTransactionAsync();
            await Assert.ThrowsAsync<DatabaseLeaseLostException>(() => other.FenceAsync(db, CancellationToken.None));
        }

        Assert.True(other.Held.IsCancellationRequested);
        await using var check = await Dbs.CreateDbContextAsync();
        Assert.Equal("another-replica", await check.Leases.Where(l => l.Name == "sync:other").Select(l => l.Owner).SingleAsync());
    }

    private async Task<DateTimeOffset> ExpiresAtAsync(string name)
    {
        await using var db = await Dbs.CreateDbContextAsync();
        return await db.Leases.Where(l => l.Name == name).Select(l => l.ExpiresAt).SingleAsync();
    }

    private async Task TakeOverAsync(string name)
    {
        await using var db = await Dbs.CreateDbContextAsync();
        await db.Leases.Where(l => l.Name == name).ExecuteUpdateAsync(set => set.SetProperty(l => l.Owner, "another-replica"));
    }

    [Fact]
    public async Task Concurrent_edits_of_a_subscription_are_detected_not_lost()
    {
        var (customer, workspace) = await SeedTenantAsync();
        var id = Guid.NewGuid();
        await using (var db = await Dbs.CreateDbContextAsync())
        {
            var subscription = NewSubscription(Guid.NewGuid(), customer, workspace);
            subscription.Id = id;
            db.Subscriptions.Add(subscription);
            await db.SaveChangesAsync();
        }

        await using var first = await Dbs.CreateDbContextAsync();
        await using var second = await Dbs.CreateDbContextAsync();
        var a = await first.Subscriptions.SingleAsync(s => s.Id == id);
        var b = await second.Subscriptions.SingleAsync(s => s.Id == id);
        a.Configuration = """{"tone":"formal"}""";
        b.Configuration = """{"tone":"friendly"}""";
        await first.SaveChangesAsync();

        await Assert.ThrowsAsync<DbUpdateConcurrencyException>(() => second.SaveChangesAsync());
        await using var check = await Dbs.CreateDbContextAsync();
        var stored = await check.Subscriptions.SingleAsync(s => s.Id == id);
        Assert.Equal("""{"tone":"formal"}""", stored.Configuration);
        Assert.Equal(1, stored.Version);
    }

    private async Task<(Guid Customer, Guid Workspace)> SeedTenantAsync()
    {
        var now = DateTimeOffset.UtcNow;
        var customer = new Customer { Id = Guid.NewGuid(), Name = "Org", CreatedAt = now, UpdatedAt = now };
        var workspace = new Workspace { Id = Guid.NewGuid(), CustomerId = customer.Id, Name = "Project", CreatedAt = now, UpdatedAt = now };
        await using var db = await Dbs.CreateDbContextAsync();
        db.Customers.Add(customer);
        db.Workspaces.Add(workspace);
        await db.SaveChangesAsync();
        return (customer.Id, workspace.Id);
    }

    private static Subscription NewSubscription(Guid resource, Guid customer, Guid workspace) => new()
    {
        Id = Guid.NewGuid(),
        ResourceUuid = resource,
        OfferingUuid = Guid.NewGuid(),
        CustomerId = customer,
        WorkspaceId = workspace,
        State = SubscriptionState.Provisioning,
        CreatedAt = DateTimeOffset.UtcNow,
        UpdatedAt = DateTimeOffset.UtcNow,
    };
}
