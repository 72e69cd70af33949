using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Npgsql;
using NpgsqlTypes;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// PostgreSQL: every hot operation is ONE statement (one round trip, one implicit transaction) of
/// data-modifying CTEs, written in raw SQL because EF Core cannot express a conditional UPDATE whose
/// RETURNING feeds an INSERT. The account row is the only lock, always taken first, so operations on
/// one organization serialize on it and never deadlock:
/// <list type="bullet">
/// <item>the conditional UPDATE (<c>balance − reserved ≥ n</c>) decides: affected rows, not a prior read;</item>
/// <item>READ COMMITTED re-checks that condition on the newest row version after waiting for the lock,
/// so 2,000 concurrent charges can neither overdraw nor be refused while credits remain;</item>
/// <item>a request id seen in the statement's snapshot replays; two copies of one request racing each
/// other both pass that check, and the partial unique index makes the second statement fail as a
/// whole (nothing debited), after which a retry sees the first and replays.</item>
/// </list>
/// Holds and their closes that meet at the database share one batch and commit (<see cref="GroupCommit"/>); a batch
/// of holds only (authorizations) commits without waiting for its WAL flush, any close (the charge) makes it wait;
/// charges of one organization share one statement (<see cref="ChargeLanes"/>).
/// Grants and funding refreshes (rare) use EF Core inside a transaction that locks the account row first.
/// </summary>
internal sealed partial class PostgresCreditStore : CreditStoreBase, IAsyncDisposable
{
    private const int UniqueRetries = 3;

    // The subscription decides servability and the resource; a request id already charged replays.
    private const string ChargeSql = """
        WITH sub AS (
            SELECT s.resource_uuid, (s.state = 'Active' AND NOT s.paused AND NOT s.downscaled) OR (@terminating AND s.state = 'Terminating') AS servable
            FROM subscriptions s WHERE s.id = @subscription AND s.customer_id = @customer
        ), prior AS (
            SELECT e.id, e.credits FROM credit_ledger_entries e
            WHERE e.scope_id = @subscription AND e.request_id = @request AND e.kind = 'Charge'
        ), account AS (
            UPDATE credit_accounts a
            SET balance = a.balance - @credits, version = a.version + 1, updated_at = @now
            WHERE a.customer_id = @customer AND (@credits = 0 OR a.balance - a.reserved >= @credits)
              AND EXISTS (SELECT 1 FROM sub WHERE sub.servable) AND NOT EXISTS (SELECT 1 FROM prior)
            RETURNING a.balance, a.reserved
        ), entry AS (
            INSERT INTO credit_ledger_entries (id, customer_id, kind, credits, balance_after, component, action_class, price_book_version,
                                               request_id, scope_id, subscription_id, resource_uuid, occurred_at, period)
            SELECT @id, @customer, 'Charge', @credits, account.balance, @component, @action, @version,
                   @request, @subscription, @subscription, sub.resource_uuid, @now, @period
            FROM account CROSS JOIN sub
            RETURNING id
        )
        SELECT (SELECT count(*) FROM entry),
               (SELECT balance - reserved FROM account),
               (SELECT servable FROM sub),
               (SELECT id FROM prior),
               (SELECT credits FROM prior),
               (SELECT a.balance - a.reserved FROM credit_accounts a WHERE a.customer_id = @customer)
        """;

    // A hold authorized by an API key also proves that key still live, so callers may cache authentication.
    private const string ReserveSql = """
        WITH sub AS (
            SELECT s.resource_uuid, s.version, (s.state = 'Active' AND NOT s.paused AND NOT s.downscaled) AS servable
            FROM subscriptions s WHERE s.id = @subscription AND s.customer_id = @customer
        ), caller AS (
            SELECT (@key::uuid IS NULL OR EXISTS (
                SELECT 1 FROM api_keys k
                WHERE k.id = @key AND k.hash = @key_hash AND k.subscription_id = @subscription AND k.revoked_at IS NULL)) AS live
        ), prior AS (
            SELECT e.credits FROM credit_ledger_entries e
            WHERE e.scope_id = @subscription AND e.request_id = @request AND e.kind = 'Charge'
        ), held AS (
            SELECT r.id, r.credits FROM credit_reservations r
            WHERE r.subscription_id = @subscription AND r.request_id = @request
        ), account AS (
            UPDATE credit_accounts a
            SET reserved = a.reserved + @credits, version = a.version + 1, updated_at = @now
            WHERE a.customer_id = @customer AND (@credits = 0 OR a.balance - a.reserved >= @credits)
              AND EXISTS (SELECT 1 FROM sub WHERE sub.servable) AND (SELECT live FROM caller)
              AND NOT EXISTS (SELECT 1 FROM prior) AND NOT EXISTS (SELECT 1 FROM held)
            RETURNING a.balance, a.reserved
        ), hold AS (
            INSERT INTO credit_reservations (id, customer_id, subscription_id, resource_uuid, request_id, action_class, component,
                                             credits, price_book_version, created_at, expires_at)
            SELECT @id, @customer, @subscription, sub.resource_uuid, @request, @action, @component, @credits, @version, @now, @expires
            FROM account CROSS JOIN sub
            RETURNING id
        )
        SELECT (SELECT count(*) FROM hold),
               (SELECT balance - reserved FROM account),
               (SELECT servable FROM sub),
               (SELECT credits FROM prior),
               (SELECT id FROM held),
               (SELECT credits FROM held),
               (SELECT a.balance - a.reserved FROM credit_accounts a WHERE a.customer_id = @customer),
               (SELECT live FROM caller),
               (SELECT version FROM sub)
        """;

    // Closing a hold: lock the account first (the same order as every other operation), then delete the
    // hold; a hold deleted meanwhile by a concurrent settle or release is skipped, so it closes once. A charge
    // stops the balance at zero: with Waldur funding, a refresh may have set it below what was already held
    // (the money shrank meanwhile); the ledger keeps the whole charge, and the next refresh counts it.
    private const string CloseSql = """
        WITH target AS (
            SELECT r.customer_id FROM credit_reservations r WHERE r.id = @reservation
        ), locked AS (
            SELECT a.customer_id FROM credit_accounts a WHERE a.customer_id IN (SELECT customer_id FROM target) FOR UPDATE
        ), hold AS (
            DELETE FROM credit_reservations r USING locked
            WHERE r.id = @reservation AND r.customer_id = locked.customer_id AND (@actual::bigint IS NULL OR @actual::bigint <= r.credits)
            RETURNING r.*
        ), account AS (
            UPDATE credit_accounts a
            SET balance = GREATEST(a.balance - CASE WHEN @kind = 'Charge' THEN COALESCE(@actual::bigint, hold.credits) ELSE 0 END, 0),
                reserved = a.reserved - hold.credits, version = a.version + 1, updated_at = @now
            FROM hold WHERE a.customer_id = hold.customer_id
            RETURNING a.balance, a.reserved
        ), entry AS (
            INSERT INTO credit_ledger_entries (id, customer_id, kind, credits, balance_after, component, action_class, price_book_version,
                                               request_id, scope_id, subscription_id, resource_uuid, reservation_id, occurred_at, period, reason)
            SELECT @id, hold.customer_id, @kind,
                   CASE WHEN @kind = 'Charge' THEN COALESCE(@actual::bigint, hold.credits) ELSE hold.credits END,
                   account.balance, hold.component, hold.action_class, hold.price_book_version,
                   hold.request_id, hold.subscription_id, hold.subscription_id, hold.resource_uuid, hold.id, @now, @period, @reason
            FROM hold CROSS JOIN account
            RETURNING credits, component
        )
        SELECT (SELECT credits FROM entry),
               (SELECT balance - reserved FROM account),
               (SELECT e.kind FROM credit_ledger_entries e WHERE e.reservation_id = @reservation LIMIT 1),
               (SELECT e.credits FROM credit_ledger_entries e WHERE e.reservation_id = @reservation LIMIT 1),
               (SELECT r.credits FROM credit_reservations r WHERE r.id = @reservation),
               (SELECT component FROM entry)
        """;

    private static readonly PositionalStatement Charge = new(ChargeSql);
    private static readonly PositionalStatement Reserve = new(ReserveSql);
    private static readonly PositionalStatement Close = new(CloseSql);

    private readonly NpgsqlDataSource _dataSource;
    private readonly ChargeLanes _lanes;
    private readonly GroupCommit _groups;

    // The organization of each hold this replica made and has not closed: its close can join a batch in lock order.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<Guid, Guid> _holders = new();

    public PostgresCreditStore(IDbContextFactory<AdapterDbContext> dbs, string connectionString)
        : base(dbs)
    {
        _lanes = new ChargeLanes(this);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        // Each statement is planned once per connection and reused: planning the CTEs costs more than running them.
        if (builder.MaxAutoPrepare == 0)
        {
            builder.MaxAutoPrepare = 16;
            builder.AutoPrepareMinUsages = 2;
        }

        // Ledger statements change no session state, so the pool need not reset it (which would also drop prepared statements).
        builder.NoResetOnClose = true;
        _dataSource = NpgsqlDataSource.Create(builder);
        _groups = new GroupCommit(_dataSource);
    }

    /// <summary>
    /// One charge, one statement. Concurrent charges of one organization are batched (<see cref="ChargeLanes"/>); a
    /// termination's charge (rare, and accepted while the subscription is Terminating) always goes alone.
    /// </summary>
    public override Task<ChargeResult> ChargeAsync(ChargeRequest request, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken) =>
        request.WhileTerminating ? ChargeOneAsync(request, entryId, now) : _lanes.ChargeAsync(new PendingCharge(request, entryId, now), cancellationToken);

    private async Task<ChargeResult> ChargeOneAsync(ChargeRequest request, Guid entryId, DateTimeOffset now)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await Charge.QueryRowAsync(_dataSource, parameters =>
                {
                    BindRequest(parameters, request, entryId, now);
                    parameters.Add(new NpgsqlParameter<bool>("terminating", request.WhileTerminating));
                }, row => Charged(row, request, entryId));
            }
            catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.UniqueViolation && attempt < UniqueRetries)
            {
                // The same request id committed concurrently: this statement changed nothing; the retry replays it.
            }
        }
    }

    private static ChargeResult Charged(NpgsqlDataReader row, ChargeRequest request, Guid entryId)
    {
        var available = Long(row, 5);
        if (row.GetInt64(0) == 1)
        {
            return new ChargeResult(ChargeStatus.Charged, request.Credits, Long(row, 1), EntryId: entryId);
        }

        if (!row.IsDBNull(3))
        {
            return new ChargeResult(ChargeStatus.Replayed, row.GetInt64(4), available, EntryId: row.GetGuid(3));
        }

        var refusal = row.IsDBNull(2) || !row.GetBoolean(2) ? CreditRefusal.SubscriptionNotServable : CreditRefusal.InsufficientCredits;
        return new ChargeResult(ChargeStatus.Refused, 0, available, refusal);
    }

    public override async Task<ReservationResult> ReserveAsync(ChargeRequest request, Guid reservationId, DateTimeOffset now, DateTimeOffset expiresAt, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                // Once queued it runs to the end, so a caller that leaves knows there may be a hold to release.
                cancellationToken.ThrowIfCancellationRequested();
                // A hold is an authorization, not a charge: it need not wait for its WAL flush. Should PostgreSQL crash
                // within that fraction of a second, the holds lost with it are settled as not found (those answers are
                // free) and their credits, given back with them, were never charged; nothing is charged twice or
                // overdrawn. Settles, releases and charges stay durable, and each durable commit also flushes every hold
                // committed before it (a batch holding one waits for the flush as a whole).
                var result = await _groups.RunAsync(request.CustomerId, Reserve, parameters =>
                {
                    BindRequest(parameters, request, reservationId, now);
                    parameters.Add(new NpgsqlParameter<DateTimeOffset>("expires", expiresAt.ToUniversalTime()));
                    parameters.Add(new NpgsqlParameter("key", NpgsqlDbType.Uuid) { Value = request.Key is { } key ? key.Id : DBNull.Value });
                    parameters.Add(new NpgsqlParameter("key_hash", NpgsqlDbType.Text) { Value = request.Key is { } proof ? proof.Hash : DBNull.Value });
                }, row => Reservation(row, request, reservationId), durable: false);
                if (result.ReservationId is { } held)
                {
                    Remember(held, request.CustomerId);
                }

                return result;
            }
            catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.UniqueViolation && attempt < UniqueRetries)
            {
                // The same request id was held concurrently: the retry returns that hold.
            }
        }
    }

    private static ReservationResult Reservation(NpgsqlDataReader row, ChargeRequest request, Guid reservationId)
    {
        var available = Long(row, 6);
        long? version = row.IsDBNull(8) ? null : row.GetInt64(8);
        if (row.GetInt64(0) == 1)
        {
            return new ReservationResult(ReservationStatus.Held, reservationId, request.Credits, Long(row, 1), SubscriptionVersion: version);
        }

        if (!row.IsDBNull(3))
        {
            return new ReservationResult(ReservationStatus.AlreadyCharged, null, row.GetInt64(3), available, SubscriptionVersion: version);
        }

        if (!row.IsDBNull(4))
        {
            return new ReservationResult(ReservationStatus.AlreadyHeld, row.GetGuid(4), row.GetInt64(5), available, SubscriptionVersion: version);
        }

        var refusal = !row.GetBoolean(7) ? CreditRefusal.KeyRevoked
            : row.IsDBNull(2) || !row.GetBoolean(2) ? CreditRefusal.SubscriptionNotServable
            : CreditRefusal.InsufficientCredits;
        return new ReservationResult(ReservationStatus.Refused, null, 0, available, refusal, version);
    }

    private void Remember(Guid reservationId, Guid customerId)
    {
        // Holds closed by another replica are never forgotten here; past this bound, closes just go alone.
        if (_holders.Count >= 100_000)
        {
            _holders.Clear();
        }

        _holders[reservationId] = customerId;
    }

    public override async Task<SettleResult> SettleAsync(Guid reservationId, long? actualCredits, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (actualCredits is < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(actualCredits), actualCredits, "A hold settles for 0 credits or more.");
        }

        Closed closed;
        try
        {
            closed = await CloseAsync(reservationId, LedgerEntryKind.Charge, actualCredits, null, entryId, now);
        }
        catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            // Charged under this request id by another path (a direct charge): one charge per request id, so release the hold.
            var released = await CloseAsync(reservationId, LedgerEntryKind.Release, null, "the request id was already charged", Guid.NewGuid(), now);
            return new SettleResult(SettleStatus.AlreadyCharged, 0, released.Available ?? 0);
        }

        if (closed.Credits is { } charged)
        {
            return new SettleResult(SettleStatus.Settled, charged, closed.Available ?? 0, closed.Component);
        }

        closed = await SeenSinceAsync(reservationId, closed, cancellationToken);
        if (closed.PriorKind is null && closed.StillHeld is { } held)
        {
            // Not closed by anyone: only an actual amount above the hold leaves it untouched.
            CreditRules.SettledAmount(held, actualCredits);
        }

        return closed.PriorKind switch
        {
            nameof(LedgerEntryKind.Charge) => new SettleResult(SettleStatus.AlreadySettled, closed.PriorCredits, 0),
            nameof(LedgerEntryKind.Release) => new SettleResult(SettleStatus.AlreadyReleased, 0, 0),
            _ => new SettleResult(SettleStatus.NotFound, 0, 0),
        };
    }

    public override async Task<ReleaseResult> ReleaseAsync(Guid reservationId, string reason, Guid entryId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var closed = await CloseAsync(reservationId, LedgerEntryKind.Release, null, reason, entryId, now);
        if (closed.Credits is { } released)
        {
            return new ReleaseResult(ReleaseStatus.Released, released, closed.Available ?? 0);
        }

        closed = await SeenSinceAsync(reservationId, closed, cancellationToken);
        return closed.PriorKind switch
        {
            nameof(LedgerEntryKind.Charge) => new ReleaseResult(ReleaseStatus.AlreadySettled, closed.PriorCredits, 0),
            nameof(LedgerEntryKind.Release) => new ReleaseResult(ReleaseStatus.AlreadyReleased, closed.PriorCredits, 0),
            _ => new ReleaseResult(ReleaseStatus.NotFound, 0, 0),
        };
    }

    protected override async Task<T> WriteAsync<T>(Func<AdapterDbContext, Task<T>> work, CancellationToken cancellationToken)
    {
        await using var db = await Dbs.CreateDbContextAsync(cancellationToken);
        await using IDbContextTransaction transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var result = await work(db);
        await transaction.CommitAsync(cancellationToken);
        return result;
    }

    protected override async Task EnsureAccountAsync(AdapterDbContext db, Guid customerId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Concurrent first grants of one organization must not fail the transaction on a duplicate key: PostgreSQL
        // aborts the whole ledger transaction on one, so not CustomerRecords.EnsureAsync (an EF insert whose duplicate
        // its callers catch). Nameless, as there: the first order or resource sync that names it fills it in.
        await db.Database.ExecuteSqlInterpolatedAsync(
            $"INSERT INTO customers (id, name, created_at, updated_at) VALUES ({customerId}, '', {now}, {now}) ON CONFLICT (id) DO NOTHING", cancellationToken);
        await db.Database.ExecuteSqlInterpolatedAsync(
            $"INSERT INTO credit_accounts (customer_id, balance, reserved, version, created_at, updated_at) VALUES ({customerId}, 0, 0, 0, {now}, {now}) ON CONFLICT (customer_id) DO NOTHING", cancellationToken);
    }

    protected override Task LockAccountAsync(AdapterDbContext db, Guid customerId, CancellationToken cancellationToken) =>
        db.Database.ExecuteSqlInterpolatedAsync($"SELECT 1 FROM credit_accounts WHERE customer_id = {customerId} FOR UPDATE", cancellationToken);

    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    /// <summary>Not cancellable: once sent (alone or in a batch) it runs to the end, and its caller learns what it did.</summary>
    private async Task<Closed> CloseAsync(Guid reservationId, LedgerEntryKind kind, long? actual, string? reason, Guid entryId, DateTimeOffset now)
    {
        void Bind(NpgsqlParameterCollection parameters)
        {
            parameters.Add(new NpgsqlParameter<Guid>("reservation", reservationId));
            parameters.Add(new NpgsqlParameter("actual", NpgsqlDbType.Bigint) { Value = actual is { } value ? value : DBNull.Value });
            parameters.Add(new NpgsqlParameter<string>("kind", kind.ToString()));
            parameters.Add(new NpgsqlParameter("reason", NpgsqlDbType.Varchar) { Value = reason is null ? DBNull.Value : reason });
            parameters.Add(new NpgsqlParameter<Guid>("id", entryId));
            parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now.ToUniversalTime()));
            parameters.Add(new NpgsqlParameter<DateOnly>("period", BillingPeriod.Of(now).FirstDay));
        }

        static Closed Read(NpgsqlDataReader row) => new(
            row.IsDBNull(0) ? null : row.GetInt64(0),
            row.IsDBNull(1) ? null : row.GetInt64(1),
            row.IsDBNull(2) ? null : row.GetString(2),
            Long(row, 3),
            row.IsDBNull(4) ? null : row.GetInt64(4),
            row.IsDBNull(5) ? null : row.GetString(5));

        return await (_holders.TryRemove(reservationId, out var customerId)
            ? _groups.RunAsync(customerId, Close, Bind, Read)
            : Close.QueryRowAsync(_dataSource, Bind, Read));
    }

    /// <summary>
    /// For a statement that closed nothing. Its snapshot predates a concurrent close it waited for: the hold
    /// deleted meanwhile still shows there (as <see cref="Closed.StillHeld"/>), its ledger entry does not. So
    /// unless the snapshot already shows the entry, a fresh read tells "closed by someone else a moment ago"
    /// from "never existed" (or, with an actual amount above the hold, "left untouched").
    /// </summary>
    private async Task<Closed> SeenSinceAsync(Guid reservationId, Closed closed, CancellationToken cancellationToken)
    {
        if (closed.PriorKind is not null)
        {
            return closed;
        }

        await using var command = _dataSource.CreateCommand("SELECT kind, credits FROM credit_ledger_entries WHERE reservation_id = @reservation LIMIT 1");
        command.Parameters.Add(new NpgsqlParameter<Guid>("reservation", reservationId));
        await using var row = await command.ExecuteReaderAsync(System.Data.CommandBehavior.SingleRow, cancellationToken);
        return await row.ReadAsync(cancellationToken) ? closed with { PriorKind = row.GetString(0), PriorCredits = row.GetInt64(1) } : closed;
    }

    private static void BindRequest(NpgsqlParameterCollection parameters, ChargeRequest request, Guid id, DateTimeOffset now)
    {
        parameters.Add(new NpgsqlParameter<Guid>("id", id));
        parameters.Add(new NpgsqlParameter<Guid>("customer", request.CustomerId));
        parameters.Add(new NpgsqlParameter<Guid>("subscription", request.SubscriptionId));
        parameters.Add(new NpgsqlParameter<string>("request", request.RequestId));
        parameters.Add(new NpgsqlParameter<long>("credits", request.Credits));
        parameters.Add(new NpgsqlParameter<string>("component", request.Component));
        parameters.Add(new NpgsqlParameter<string>("action", request.Action.ToString()));
        parameters.Add(new NpgsqlParameter<int>("version", request.PriceBookVersion));
        parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now.ToUniversalTime()));
        parameters.Add(new NpgsqlParameter<DateOnly>("period", BillingPeriod.Of(now).FirstDay));
    }

    private static long Long(NpgsqlDataReader row, int ordinal) => row.IsDBNull(ordinal) ? 0 : row.GetInt64(ordinal);

    /// <param name="Credits">Charged or released by this call; null when the hold was not closed here.</param>
    /// <param name="StillHeld">The hold's credits as the statement's snapshot saw them: an actual amount above it was refused, or a concurrent close removed it meanwhile.</param>
    private sealed record Closed(long? Credits, long? Available, string? PriorKind, long PriorCredits, long? StillHeld, string? Component = null);
}
