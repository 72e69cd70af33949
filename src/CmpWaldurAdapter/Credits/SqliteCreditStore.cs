using System.Globalization;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// SQLite, the embedded database: one writer at a time, so writes that arrive while one is at the database
/// wait for it anyway. They go together in the next write transaction (one BEGIN IMMEDIATE, one commit, one
/// fsync for all of them), run one after another by a single loop on one long-lived connection whose
/// statements are prepared once. Each write keeps its own outcome:
/// <list type="bullet">
/// <item>it runs inside its own savepoint: a write that fails is rolled back alone, and its caller gets its exception;</item>
/// <item>it sees every earlier write of its batch (one transaction, one writer), so the ledger's rules hold exactly as if they ran one by one;</item>
/// <item>callers hear of a result only after the commit; a failed commit fails every write of the batch, none of which then happened;</item>
/// <item>a write whose caller gave up before its turn is not run.</item>
/// </list>
/// BEGIN IMMEDIATE takes SQLite's write lock up front, so a concurrent process (a CLI grant while the server
/// runs) waits instead of interleaving between a write's read and its update. The hot operations are plain
/// SQL in the model's own storage formats (upper-case GUID text, UTC ticks, ISO dates); grants and funding
/// refreshes (rare) run EF Core on the same connection and transaction.
/// </summary>
internal sealed class SqliteCreditStore(IDbContextFactory<AdapterDbContext> dbs, string connectionString) : CreditStoreBase(dbs), IDisposable
{
    /// <summary>Largest number of writes one transaction carries.</summary>
    public const int MaxBatch = 64;

    /// <summary>Write transactions committed so far: how the writes were batched is observable.</summary>
    internal long Transactions => Interlocked.Read(ref _transactions);

    private const string SubscriptionSql = """
        SELECT version, resource_uuid, state = 'Active' AND paused = 0 AND downscaled = 0, state = 'Terminating'
        FROM subscriptions WHERE id = $subscription AND customer_id = $customer
        """;

    private const string PriorChargeSql = "SELECT id, credits FROM credit_ledger_entries WHERE scope_id = $subscription AND request_id = $request AND kind = 'Charge'";

    private const string HeldSql = "SELECT id, credits FROM credit_reservations WHERE subscription_id = $subscription AND request_id = $request";

    private const string LiveKeySql = "SELECT 1 FROM api_keys WHERE id = $key AND hash = $hash AND subscription_id = $subscription AND revoked_at IS NULL";

    private const string AvailableSql = "SELECT balance - reserved FROM credit_accounts WHERE customer_id = $customer";

    private const string DebitSql = """
        UPDATE credit_accounts SET balance = balance - $credits, version = version + 1, updated_at = $now
        WHERE customer_id = $customer AND ($credits = 0 OR balance - reserved >= $credits)
        RETURNING balance, reserved
        """;

    private const string SetAsideSql = """
        UPDATE credit_accounts SET reserved = reserved + $credits, version = version + 1, updated_at = $now
        WHERE customer_id = $customer AND ($credits = 0 OR balance - reserved >= $credits)
        RETURNING balance, reserved
        """;

    private const string InsertHoldSql = """
        INSERT INTO credit_reservations (id, customer_id, subscription_id, resource_uuid, request_id, action_class, component,
                                         credits, price_book_version, created_at, expires_at)
        VALUES ($id, $customer, $subscription, $resource, $request, $action, $component, $credits, $version, $now, $expires)
        """;

    private const string HoldSql = """
        SELECT customer_id, subscription_id, resource_uuid, request_id, action_class, component, credits, price_book_version
        FROM credit_reservations WHERE id = $reservation
        """;

    private const string ClosedSql = "SELECT kind, credits FROM credit_ledger_entries WHERE reservation_id = $reservation LIMIT 1";

    private const string DeleteHoldSql = "DELETE FROM credit_reservations WHERE id = $reservation";

    // A charge stops the balance at zero (see PostgresCreditStore's CloseSql: Waldur funding may have shrunk under a hold).
    private const string CloseAccountSql = """
        UPDATE credit_accounts SET balance = MAX(balance - $charged, 0), reserved = reserved - $held, version = version + 1, updated_at = $now
        WHERE customer_id = $customer
        RETURNING balance, reserved
        """;

    private const string InsertEntrySql = """
        INSERT INTO credit_ledger_entries (id, customer_id, kind, credits, balance_after, component, action_class, price_book_version,
                                           request_id, scope_id, subscription_id, resource_uuid, reservation_id, occurred_at, period, reason)
        VALUES ($id, $customer, $kind, $credits, $balance, $component, $action, $version,
                $request, $subscription, $subscription, $resource, $reservation, $now, $period, $reason)
        """;

    private readonly List<PendingWrite> _queue = [];
    private readonly Dictionary<string, SqliteCommand> _prepared = [];
    private bool _running;
    private bool _disposed;
    private long _transactions;

    // Used only by the writer loop (one at a time), so neither needs a lock.
    private SqliteConnection? _connection;
    private SqliteTransaction? _transaction;

    public override Task<ChargeResult> ChargeAsync(ChargeRequest request, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        Enqueue(() =>
        {
            if (PriorCharge(request.SubscriptionId, request.RequestId) is { } prior)
            {
                return new ChargeResult(ChargeStatus.Replayed, prior.Credits, Available(request.CustomerId), EntryId: prior.Id);
            }

            if (Subscription(request) is not { } subscription || !(subscription.Servable || (request.WhileTerminating && subscription.Terminating)))
            {
                return new ChargeResult(ChargeStatus.Refused, 0, Available(request.CustomerId), CreditRefusal.SubscriptionNotServable);
            }

            if (Account(DebitSql, request.CustomerId, request.Credits, now) is not { } account)
            {
                return new ChargeResult(ChargeStatus.Refused, 0, Available(request.CustomerId), CreditRefusal.InsufficientCredits);
            }

            InsertEntry(new Entry(entryId, request.CustomerId, LedgerEntryKind.Charge, request.Credits, account.Balance, request.Component, request.Action.ToString(),
                request.PriceBookVersion, request.RequestId, request.SubscriptionId, subscription.Resource, null, null), now);
            return new ChargeResult(ChargeStatus.Charged, request.Credits, account.Available, EntryId: entryId);
        }, cancellationToken);

    public override Task<ReservationResult> ReserveAsync(ChargeRequest request, Guid reservationId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken) =>
        Enqueue(() =>
        {
            var subscription = Subscription(request);
            var version = subscription?.Version;
            if (PriorCharge(request.SubscriptionId, request.RequestId) is { } prior)
            {
                return new ReservationResult(ReservationStatus.AlreadyCharged, null, prior.Credits, Available(request.CustomerId), SubscriptionVersion: version);
            }

            using (var held = Query(HeldSql, ("$subscription", Id(request.SubscriptionId)), ("$request", request.RequestId)))
            {
                if (held.Read())
                {
                    var (id, credits) = (Guid.Parse(held.GetString(0)), held.GetInt64(1));
                    held.Close();
                    return new ReservationResult(ReservationStatus.AlreadyHeld, id, credits, Available(request.CustomerId), SubscriptionVersion: version);
                }
            }

            // A hold authorized by an API key also proves that key still live, so callers may cache authentication.
            if (request.Key is { } key && Scalar(LiveKeySql, ("$key", Id(key.Id)), ("$hash", key.Hash), ("$subscription", Id(request.SubscriptionId))) is null)
            {
                return new ReservationResult(ReservationStatus.Refused, null, 0, Available(request.CustomerId), CreditRefusal.KeyRevoked, version);
            }

            if (subscription is not { Servable: true } servable)
            {
                return new ReservationResult(ReservationStatus.Refused, null, 0, Available(request.CustomerId), CreditRefusal.SubscriptionNotServable, version);
            }

            if (Account(SetAsideSql, request.CustomerId, request.Credits, now) is not { } account)
            {
                return new ReservationResult(ReservationStatus.Refused, null, 0, Available(request.CustomerId), CreditRefusal.InsufficientCredits, version);
            }

            Execute(InsertHoldSql,
                ("$id", Id(reservationId)), ("$customer", Id(request.CustomerId)), ("$subscription", Id(request.SubscriptionId)),
                ("$resource", Id(servable.Resource)), ("$request", request.RequestId), ("$action", request.Action.ToString()),
                ("$component", request.Component), ("$credits", request.Credits), ("$version", request.PriceBookVersion),
                ("$now", now.UtcTicks), ("$expires", expiresAt.UtcTicks));
            return new ReservationResult(ReservationStatus.Held, reservationId, request.Credits, account.Available, SubscriptionVersion: version);
        }, cancellationToken);

    public override Task<SettleResult> SettleAsync(Guid reservationId, long? actualCredits, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        Enqueue(() =>
        {
            if (Hold(reservationId) is not { } hold)
            {
                var (kind, credits) = Closed(reservationId);
                var status = kind switch
                {
                    nameof(LedgerEntryKind.Charge) => SettleStatus.AlreadySettled,
                    nameof(LedgerEntryKind.Release) => SettleStatus.AlreadyReleased,
                    _ => SettleStatus.NotFound,
                };
                return new SettleResult(status, status == SettleStatus.AlreadySettled ? credits : 0, 0);
            }

            var amount = CreditRules.SettledAmount(hold.Credits, actualCredits);
            if (PriorCharge(hold.SubscriptionId, hold.RequestId) is not null)
            {
                // Charged under this request id by another path (a direct charge): one charge per request id, so release the hold.
                var released = Close(hold, LedgerEntryKind.Release, 0, "the request id was already charged", entryId, now);
                return new SettleResult(SettleStatus.AlreadyCharged, 0, released);
            }

            return new SettleResult(SettleStatus.Settled, amount, Close(hold, LedgerEntryKind.Charge, amount, null, entryId, now), hold.Component);
        }, cancellationToken);

    public override Task<ReleaseResult> ReleaseAsync(Guid reservationId, string reason, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        Enqueue(() =>
        {
            if (Hold(reservationId) is not { } hold)
            {
                var (kind, credits) = Closed(reservationId);
                var status = kind switch
                {
                    nameof(LedgerEntryKind.Charge) => ReleaseStatus.AlreadySettled,
                    nameof(LedgerEntryKind.Release) => ReleaseStatus.AlreadyReleased,
                    _ => ReleaseStatus.NotFound,
                };
                return new ReleaseResult(status, credits, 0);
            }

            return new ReleaseResult(ReleaseStatus.Released, hold.Credits, Close(hold, LedgerEntryKind.Release, 0, reason, entryId, now));
        }, cancellationToken);

    protected override Task<T> WriteAsync<T>(Func<AdapterDbContext, Task<T>> work, CancellationToken cancellationToken) =>
        EnqueueAsync(work, cancellationToken);

    /// <summary>Refuses new writes; writes already queued still run, and the loop closes the connection once they have.</summary>
    public void Dispose()
    {
        lock (_queue)
        {
            _disposed = true;
            if (_running)
            {
                return;
            }
        }

        Disconnect();
    }

    /// <summary>A hot operation: plain SQL on the writer's connection, no EF Core context.</summary>
    private Task<T> Enqueue<T>(Func<T> work, CancellationToken cancellationToken) =>
        EnqueueAsync(_ => Task.FromResult(work()), cancellationToken, usesContext: false);

    private Task<T> EnqueueAsync<T>(Func<AdapterDbContext, Task<T>> work, CancellationToken cancellationToken, bool usesContext = true)
    {
        var pending = new PendingWrite<T>(work, usesContext, cancellationToken);
        lock (_queue)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _queue.Add(pending);
            if (_running)
            {
                return pending.Completion.Task;
            }

            _running = true;
        }

        _ = Task.Run(WriterAsync, CancellationToken.None);
        return pending.Completion.Task;
    }

    private async Task WriterAsync()
    {
        while (true)
        {
            List<PendingWrite> batch;
            lock (_queue)
            {
                if (_queue.Count == 0)
                {
                    _running = false;
                    if (!_disposed)
                    {
                        return;
                    }
                }

                var count = Math.Min(_queue.Count, MaxBatch);
                batch = _queue.GetRange(0, count);
                _queue.RemoveRange(0, count);
            }

            if (batch.Count == 0)
            {
                // Disposed while this loop ran: it owns the connection until here.
                Disconnect();
                return;
            }

            try
            {
                await CommitAsync(batch);
            }
            catch (Exception exception)
            {
                // Nothing of the batch was committed: every write that had not failed on its own fails with it,
                // and the next batch starts on a fresh connection.
                foreach (var write in batch)
                {
                    write.Fail(exception);
                }

                Disconnect();
            }
        }
    }

    private async Task CommitAsync(List<PendingWrite> batch)
    {
        if (_connection is null)
        {
            _connection = new SqliteConnection(connectionString);
            await _connection.OpenAsync();
        }

        AdapterDbContext? db = null;
        using var transaction = _connection.BeginTransaction(deferred: false);
        _transaction = transaction;
        try
        {
            foreach (var write in batch)
            {
                if (!write.TryStart())
                {
                    continue; // its caller gave up while it waited, and has been told
                }

                if (write.UsesContext && db is null)
                {
                    db = await Dbs.CreateDbContextAsync();
                    db.Database.SetDbConnection(_connection, contextOwnsConnection: false);
                    await db.Database.UseTransactionAsync(transaction);
                    // Each write has its own savepoint below; EF Core's own around every SaveChanges would only add statements.
                    db.Database.AutoSavepointsEnabled = false;
                }

                transaction.Save("write");
                try
                {
                    await write.RunAsync(db);
                    transaction.Release("write");
                }
                catch (Exception exception)
                {
                    transaction.Rollback("write");
                    transaction.Release("write");
                    write.Fail(exception);
                }
                finally
                {
                    // The next write starts from the database, not from what this one left tracked.
                    db?.ChangeTracker.Clear();
                }
            }

            transaction.Commit();
            Interlocked.Increment(ref _transactions);
        }
        finally
        {
            _transaction = null;
            if (db is not null)
            {
                await db.DisposeAsync();
            }
        }

        foreach (var write in batch)
        {
            write.Publish();
        }
    }

    /// <summary>Closes the connection and its statements; never throws, so the loop always goes on or ends cleanly.</summary>
    private void Disconnect()
    {
        try
        {
            foreach (var command in _prepared.Values)
            {
                command.Dispose();
            }

            _connection?.Dispose();
        }
        catch (Exception)
        {
            // A connection that broke the batch may fail to close too; a new one is opened next time either way.
        }

        _prepared.Clear();
        _connection = null;
    }

    private static string Id(Guid id) => id.ToString("D").ToUpperInvariant();

    private (Guid Id, long Credits)? PriorCharge(Guid subscriptionId, string requestId)
    {
        using var row = Query(PriorChargeSql, ("$subscription", Id(subscriptionId)), ("$request", requestId));
        return row.Read() ? (Guid.Parse(row.GetString(0)), row.GetInt64(1)) : null;
    }

    private (long Version, Guid Resource, bool Servable, bool Terminating)? Subscription(ChargeRequest request)
    {
        using var row = Query(SubscriptionSql, ("$subscription", Id(request.SubscriptionId)), ("$customer", Id(request.CustomerId)));
        return row.Read() ? (row.GetInt64(0), Guid.Parse(row.GetString(1)), row.GetInt64(2) == 1, row.GetInt64(3) == 1) : null;
    }

    private long Available(Guid customerId) => Scalar(AvailableSql, ("$customer", Id(customerId))) is long available ? available : 0;

    /// <summary>Runs an account update that returns the account; null when its condition left the row alone.</summary>
    private (long Balance, long Available)? Account(string sql, Guid customerId, long credits, DateTimeOffset now)
    {
        using var row = Query(sql, ("$customer", Id(customerId)), ("$credits", credits), ("$now", now.UtcTicks));
        return row.Read() ? (row.GetInt64(0), row.GetInt64(0) - row.GetInt64(1)) : null;
    }

    private HeldCredits? Hold(Guid reservationId)
    {
        using var row = Query(HoldSql, ("$reservation", Id(reservationId)));
        return row.Read()
            ? new HeldCredits(reservationId, Guid.Parse(row.GetString(0)), Guid.Parse(row.GetString(1)), Guid.Parse(row.GetString(2)), row.GetString(3),
                row.GetString(4), row.GetString(5), row.GetInt64(6), row.GetInt32(7))
            : null;
    }

    /// <summary>How a hold that no longer exists ended: by a charge, a release, or it never existed.</summary>
    private (string? Kind, long Credits) Closed(Guid reservationId)
    {
        using var row = Query(ClosedSql, ("$reservation", Id(reservationId)));
        return row.Read() ? (row.GetString(0), row.GetInt64(1)) : (null, 0);
    }

    /// <summary>Removes the hold and books its end: a charge of <paramref name="charged"/> or a release. Returns the credits available after.</summary>
    private long Close(HeldCredits hold, LedgerEntryKind kind, long charged, string? reason, Guid entryId, DateTimeOffset now)
    {
        Execute(DeleteHoldSql, ("$reservation", Id(hold.Id)));
        using var row = Query(CloseAccountSql, ("$customer", Id(hold.CustomerId)), ("$charged", charged), ("$held", hold.Credits), ("$now", now.UtcTicks));
        row.Read();
        var (balance, available) = (row.GetInt64(0), row.GetInt64(0) - row.GetInt64(1));
        row.Close();
        InsertEntry(new Entry(entryId, hold.CustomerId, kind, kind == LedgerEntryKind.Charge ? charged : hold.Credits, balance, hold.Component, hold.ActionClass,
            hold.PriceBookVersion, hold.RequestId, hold.SubscriptionId, hold.ResourceUuid, hold.Id, reason), now);
        return available;
    }

    private void InsertEntry(Entry entry, DateTimeOffset now) => Execute(InsertEntrySql,
        ("$id", Id(entry.Id)), ("$customer", Id(entry.CustomerId)), ("$kind", entry.Kind.ToString()), ("$credits", entry.Credits),
        ("$balance", entry.BalanceAfter), ("$component", entry.Component), ("$action", entry.ActionClass), ("$version", entry.PriceBookVersion),
        ("$request", entry.RequestId), ("$subscription", Id(entry.SubscriptionId)), ("$resource", Id(entry.ResourceUuid)),
        ("$reservation", entry.ReservationId is { } reservation ? Id(reservation) : null), ("$now", now.UtcTicks),
        ("$period", BillingPeriod.Of(now).FirstDay.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)), ("$reason", entry.Reason));

    private SqliteDataReader Query(string sql, params (string Name, object? Value)[] parameters) =>
        Prepared(sql, parameters).ExecuteReader(System.Data.CommandBehavior.SingleRow);

    private object? Scalar(string sql, params (string Name, object? Value)[] parameters) => Prepared(sql, parameters).ExecuteScalar();

    private void Execute(string sql, params (string Name, object? Value)[] parameters) => Prepared(sql, parameters).ExecuteNonQuery();

    /// <summary>The statement, prepared once on this connection (SQLite keeps a command's compiled statement), bound to this write's values.</summary>
    private SqliteCommand Prepared(string sql, (string Name, object? Value)[] values)
    {
        if (!_prepared.TryGetValue(sql, out var command))
        {
            command = _connection!.CreateCommand();
            command.CommandText = sql;
            _prepared[sql] = command;
        }

        command.Transaction = _transaction;
        command.Parameters.Clear();
        foreach (var (name, value) in values)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return command;
    }

    private sealed record HeldCredits(Guid Id, Guid CustomerId, Guid SubscriptionId, Guid ResourceUuid, string RequestId, string ActionClass, string Component, long Credits, int PriceBookVersion);

    private sealed record Entry(Guid Id, Guid CustomerId, LedgerEntryKind Kind, long Credits, long BalanceAfter, string Component, string ActionClass,
        int PriceBookVersion, string RequestId, Guid SubscriptionId, Guid ResourceUuid, Guid? ReservationId, string? Reason);

    private abstract class PendingWrite(bool usesContext)
    {
        private const int Queued = 0, Started = 1, Abandoned = 2;

        private int _state;

        public bool UsesContext { get; } = usesContext;

        /// <summary>Claims the write for the batch; false once its caller has given up (then it is never run).</summary>
        public bool TryStart() => Interlocked.CompareExchange(ref _state, Started, Queued) == Queued;

        /// <summary>The caller gave up: a write still queued is dropped and its caller told at once; one already started finishes.</summary>
        protected bool TryAbandon() => Interlocked.CompareExchange(ref _state, Abandoned, Queued) == Queued;

        public abstract Task RunAsync(AdapterDbContext? db);

        /// <summary>Tells the caller its write's result, once the batch is committed (no-op if it failed).</summary>
        public abstract void Publish();

        public abstract void Fail(Exception exception);
    }

    private sealed class PendingWrite<T> : PendingWrite
    {
        private readonly Func<AdapterDbContext, Task<T>> _work;
        private T? _result;
        private bool _ran;

        public PendingWrite(Func<AdapterDbContext, Task<T>> work, bool usesContext, CancellationToken cancellation)
            : base(usesContext)
        {
            _work = work;
            if (cancellation.CanBeCanceled)
            {
                // Registered for the write's whole life; disposed with the completion.
                var registration = cancellation.Register(() =>
                {
                    if (TryAbandon())
                    {
                        Completion.TrySetCanceled(cancellation);
                    }
                });
                Completion.Task.ContinueWith(_ => registration.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
        }

        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override async Task RunAsync(AdapterDbContext? db)
        {
            _result = await _work(db!);
            _ran = true;
        }

        public override void Publish()
        {
            if (_ran)
            {
                Completion.TrySetResult(_result!);
            }
        }

        public override void Fail(Exception exception)
        {
            if (exception is OperationCanceledException canceled)
            {
                Completion.TrySetCanceled(canceled.CancellationToken);
            }
            else
            {
                Completion.TrySetException(exception);
            }
        }
    }
}
