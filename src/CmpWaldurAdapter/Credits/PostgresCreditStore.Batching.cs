using System.Collections.Concurrent;
using CmpWaldurAdapter.Core.Credits;
using Npgsql;
using NpgsqlTypes;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// Charges of one organization serialize on its account row, and with durable commits each one holds
/// that lock through a WAL flush: one hot organization would be capped at one charge per flush. So
/// charges that arrive while a statement for the same organization is running wait and go together in
/// the next statement: one lock, one commit, many charges. Alone, a charge takes the single statement.
/// </summary>
internal sealed partial class PostgresCreditStore
{
    /// <summary>Largest number of charges one statement carries.</summary>
    internal const int MaxBatch = 256;

    // Lock the account first, then walk the requests in arrival order with a running balance: each is
    // charged if servable, not already charged, and affordable at its turn — exactly what the same
    // charges one after another would do. The account is then set to the walk's final balance.
    private const string ChargeBatchSql = """
        WITH RECURSIVE locked AS (
            SELECT a.balance, a.reserved FROM credit_accounts a WHERE a.customer_id = @customer FOR UPDATE
        ), input AS (
            SELECT * FROM unnest(@ids, @subscriptions, @requests, @credits, @components, @actions, @versions, @times, @periods)
                WITH ORDINALITY AS t(id, subscription_id, request_id, credits, component, action_class, version, occurred_at, period, n)
        ), checked AS (
            SELECT i.*, s.resource_uuid,
                   COALESCE(s.state = 'Active' AND NOT s.paused AND NOT s.downscaled, false) AS servable,
                   p.id AS prior_id, p.credits AS prior_credits
            FROM input i
            -- LATERAL + LIMIT keep these index lookups per request; a join would let a generic plan scan the whole ledger.
            LEFT JOIN LATERAL (
                SELECT s.resource_uuid, s.state, s.paused, s.downscaled FROM subscriptions s
                WHERE s.id = i.subscription_id AND s.customer_id = @customer LIMIT 1
            ) s ON true
            LEFT JOIN LATERAL (
                SELECT e.id, e.credits FROM credit_ledger_entries e
                WHERE e.scope_id = i.subscription_id AND e.request_id = i.request_id AND e.kind = 'Charge' LIMIT 1
            ) p ON true
        ), walk AS (
            SELECT 0::bigint AS n, (SELECT balance FROM locked) AS balance, false AS accepted
            UNION ALL
            SELECT c.n, CASE WHEN x.ok THEN w.balance - c.credits ELSE w.balance END, x.ok
            FROM walk w
            JOIN checked c ON c.n = w.n + 1
            CROSS JOIN LATERAL (
                SELECT c.servable AND c.prior_id IS NULL AND w.balance IS NOT NULL
                       AND (c.credits = 0 OR w.balance - (SELECT reserved FROM locked) >= c.credits) AS ok
            ) x
        ), entry AS (
            INSERT INTO credit_ledger_entries (id, customer_id, kind, credits, balance_after, component, action_class, price_book_version,
                                               request_id, scope_id, subscription_id, resource_uuid, occurred_at, period)
            SELECT c.id, @customer, 'Charge', c.credits, w.balance, c.component, c.action_class, c.version,
                   c.request_id, c.subscription_id, c.subscription_id, c.resource_uuid, c.occurred_at, c.period
            FROM checked c JOIN walk w ON w.n = c.n
            WHERE w.accepted
            RETURNING id
        ), account AS (
            UPDATE credit_accounts a
            SET balance = (SELECT w.balance FROM walk w ORDER BY w.n DESC LIMIT 1), version = a.version + 1, updated_at = @now
            WHERE a.customer_id = @customer AND EXISTS (SELECT 1 FROM walk WHERE accepted)
            RETURNING a.balance
        )
        SELECT c.n, w.accepted, c.servable, c.prior_id, c.prior_credits,
               w.balance - (SELECT reserved FROM locked),
               (SELECT count(*) FROM entry), (SELECT count(*) FROM account)
        FROM checked c JOIN walk w ON w.n = c.n
        ORDER BY c.n
        """;

    private async Task<ChargeResult[]> ChargeBatchAsync(Guid customerId, IReadOnlyList<PendingCharge> batch)
    {
        var now = batch[^1].Now;
        await using var command = _dataSource.CreateCommand(ChargeBatchSql);
        var parameters = command.Parameters;
        parameters.Add(new NpgsqlParameter<Guid>("customer", customerId));
        parameters.Add(new NpgsqlParameter<Guid[]>("ids", batch.Select(p => p.EntryId).ToArray()));
        parameters.Add(new NpgsqlParameter<Guid[]>("subscriptions", batch.Select(p => p.Request.SubscriptionId).ToArray()));
        parameters.Add(new NpgsqlParameter<string[]>("requests", batch.Select(p => p.Request.RequestId).ToArray()) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        parameters.Add(new NpgsqlParameter<long[]>("credits", batch.Select(p => p.Request.Credits).ToArray()));
        parameters.Add(new NpgsqlParameter<string[]>("components", batch.Select(p => p.Request.Component).ToArray()) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        parameters.Add(new NpgsqlParameter<string[]>("actions", batch.Select(p => p.Request.Action.ToString()).ToArray()) { NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        parameters.Add(new NpgsqlParameter<int[]>("versions", batch.Select(p => p.Request.PriceBookVersion).ToArray()));
        parameters.Add(new NpgsqlParameter<DateTimeOffset>("now", now.ToUniversalTime()));
        // Each charge keeps its own time and month: one that waited for the statement across midnight on the last
        // day is still the old month's, as it would be alone (and on SQLite).
        parameters.Add(new NpgsqlParameter<DateTimeOffset[]>("times", batch.Select(p => p.Now.ToUniversalTime()).ToArray()));
        parameters.Add(new NpgsqlParameter<DateOnly[]>("periods", batch.Select(p => BillingPeriod.Of(p.Now).FirstDay).ToArray()));

        var results = new ChargeResult[batch.Count];
        // Cancelling one waiting caller must not cancel the others' charges: the statement runs to completion.
        await using var rows = await command.ExecuteReaderAsync(CancellationToken.None);
        while (await rows.ReadAsync(CancellationToken.None))
        {
            var index = (int)rows.GetInt64(0) - 1;
            var available = rows.IsDBNull(5) ? 0 : rows.GetInt64(5);
            var pending = batch[index];
            results[index] = rows.GetBoolean(1)
                ? new ChargeResult(ChargeStatus.Charged, pending.Request.Credits, available, EntryId: pending.EntryId)
                : !rows.IsDBNull(3)
                    ? new ChargeResult(ChargeStatus.Replayed, rows.GetInt64(4), available, EntryId: rows.GetGuid(3))
                    : new ChargeResult(ChargeStatus.Refused, 0, available, rows.GetBoolean(2) ? CreditRefusal.InsufficientCredits : CreditRefusal.SubscriptionNotServable);
        }

        return results;
    }

    private sealed record PendingCharge(ChargeRequest Request, Guid EntryId, DateTimeOffset Now)
    {
        public TaskCompletionSource<ChargeResult> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public (Guid, string) Key => (Request.SubscriptionId, Request.RequestId);
    }

    /// <summary>One queue per organization; whoever finds it idle runs statements until it is empty again.</summary>
    private sealed class ChargeLanes(PostgresCreditStore store)
    {
        private readonly ConcurrentDictionary<Guid, Lane> _lanes = new();

        public Task<ChargeResult> ChargeAsync(PendingCharge pending, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var lane = _lanes.GetOrAdd(pending.Request.CustomerId, _ => new Lane());
            bool drain;
            lock (lane)
            {
                lane.Queue.Add(pending);
                drain = !lane.Draining;
                lane.Draining = true;
            }

            if (drain)
            {
                _ = DrainAsync(pending.Request.CustomerId, lane);
            }

            return pending.Completion.Task.WaitAsync(cancellationToken);
        }

        private async Task DrainAsync(Guid customerId, Lane lane)
        {
            while (true)
            {
                List<PendingCharge> batch;
                lock (lane)
                {
                    if (lane.Queue.Count == 0)
                    {
                        lane.Draining = false;
                        return;
                    }

                    batch = Take(lane.Queue);
                }

                await RunAsync(customerId, batch);
            }
        }

        /// <summary>Up to <see cref="MaxBatch"/> charges in arrival order; a second copy of a request waits for the next statement, where it replays.</summary>
        private static List<PendingCharge> Take(List<PendingCharge> queue)
        {
            var batch = new List<PendingCharge>(Math.Min(queue.Count, MaxBatch));
            var keys = new HashSet<(Guid, string)>();
            var index = 0;
            while (index < queue.Count && batch.Count < MaxBatch)
            {
                if (keys.Add(queue[index].Key))
                {
                    batch.Add(queue[index]);
                    queue.RemoveAt(index);
                }
                else
                {
                    index++;
                }
            }

            return batch;
        }

        private async Task RunAsync(Guid customerId, List<PendingCharge> batch)
        {
            try
            {
                if (batch.Count == 1)
                {
                    var single = batch[0];
                    single.Completion.TrySetResult(await store.ChargeOneAsync(single.Request, single.EntryId, single.Now));
                    return;
                }

                var results = await store.ChargeBatchAsync(customerId, batch);
                for (var i = 0; i < batch.Count; i++)
                {
                    batch[i].Completion.TrySetResult(results[i]);
                }
            }
            catch (PostgresException exception) when (exception.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                // A request id of the batch was charged concurrently elsewhere (another replica, a settle): the
                // whole statement changed nothing; charge one by one, where such a copy replays.
                foreach (var pending in batch)
                {
                    await CompleteAsync(pending, () => store.ChargeOneAsync(pending.Request, pending.EntryId, pending.Now));
                }
            }
            catch (Exception exception)
            {
                foreach (var pending in batch)
                {
                    pending.Completion.TrySetException(exception);
                }
            }
        }

        private static async Task CompleteAsync(PendingCharge pending, Func<Task<ChargeResult>> charge)
        {
            try
            {
                pending.Completion.TrySetResult(await charge());
            }
            catch (Exception exception)
            {
                pending.Completion.TrySetException(exception);
            }
        }

        private sealed class Lane
        {
            public List<PendingCharge> Queue { get; } = [];

            public bool Draining { get; set; }
        }
    }
}
