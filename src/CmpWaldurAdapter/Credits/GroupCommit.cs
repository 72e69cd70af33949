using Npgsql;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// Group commit for the ledger's hot statements. Every chat message holds and then settles (two commits),
/// and a statement that finds the database busy waits anyway; so statements that arrive while a batch of
/// its lane is at the database go together in the next one: one round trip, one transaction, one WAL flush
/// for all. Alone, a statement goes at once.
/// <list type="bullet">
/// <item>A batch runs its statements in ascending organization order (arrival order within one), the order
/// in which they lock the organizations' accounts; every batch does the same, so two batches, of this replica
/// or another, never wait for each other in a cycle.</item>
/// <item>A batch is one transaction: should it fail, none of it was committed, and each statement is run
/// alone, with its own outcome (a concurrent copy of a request id, say) for its own caller.</item>
/// <item>Once queued, a statement runs to the end (not cancelled): its caller is told what it did.</item>
/// <item>A batch whose statements are all not <c>durable</c> commits without waiting for its WAL flush (a
/// transaction-local <c>synchronous_commit = off</c>, so the pooled session keeps its own setting); one durable
/// statement makes the whole batch wait. A crash of PostgreSQL can lose the last fraction of a second of the
/// batches that did not wait, whole and in order; never part of one.</item>
/// </list>
/// </summary>
internal sealed class GroupCommit(NpgsqlDataSource dataSource)
{
    private const string AsyncCommit = "SELECT set_config('synchronous_commit', 'off', true)";

    /// <summary>Largest number of statements one batch carries.</summary>
    public const int MaxBatch = 64;

    /// <summary>
    /// Batches at the database at once. One: the next batch forms while it runs. Two ran 10–20 % fewer chat
    /// messages per second on the 2-core benchmark machine (smaller batches, more commits).
    /// </summary>
    public const int InFlight = 1;

    private readonly List<Statement> _queue = [];
    private int _running;

    /// <summary>Runs a statement that locks (at most) the account of <paramref name="customerId"/> and returns one row.</summary>
    public Task<T> RunAsync<T>(Guid customerId, PositionalStatement statement, Action<NpgsqlParameterCollection> bind, Func<NpgsqlDataReader, T> read, bool durable = true)
    {
        var pending = new Statement<T>(customerId, durable, statement, bind, read);
        lock (_queue)
        {
            _queue.Add(pending);
            if (_running == InFlight)
            {
                return pending.Completion.Task;
            }

            _running++;
        }

        _ = RunnerAsync();
        return pending.Completion.Task;
    }

    private async Task RunnerAsync()
    {
        while (true)
        {
            List<Statement> batch;
            lock (_queue)
            {
                if (_queue.Count == 0)
                {
                    _running--;
                    return;
                }

                var count = Math.Min(_queue.Count, MaxBatch);
                batch = _queue.GetRange(0, count);
                _queue.RemoveRange(0, count);
            }

            if (batch.Count == 1)
            {
                await RunAloneAsync(batch[0]);
                continue;
            }

            batch = [.. batch.OrderBy(s => s.CustomerId)];
            try
            {
                await RunBatchAsync(batch);
            }
            catch (Exception exception) when (exception is NpgsqlException or InvalidOperationException or TimeoutException)
            {
                foreach (var statement in batch)
                {
                    await RunAloneAsync(statement);
                }
            }
            catch (Exception exception)
            {
                foreach (var statement in batch)
                {
                    statement.Fail(exception);
                }
            }
        }
    }

    private async Task RunAloneAsync(Statement statement)
    {
        if (statement.Durable)
        {
            await statement.RunAloneAsync(dataSource);
            return;
        }

        try
        {
            await RunBatchAsync([statement]);
        }
        catch (Exception exception)
        {
            statement.Fail(exception);
        }
    }

    private async Task RunBatchAsync(List<Statement> batch)
    {
        var durable = batch.Exists(s => s.Durable);
        await using (var connection = await dataSource.OpenConnectionAsync(CancellationToken.None))
        await using (var commands = connection.CreateBatch())
        {
            if (!durable)
            {
                // The batch is one implicit transaction, so the local setting lasts exactly as long as it.
                commands.BatchCommands.Add(new NpgsqlBatchCommand(AsyncCommit));
            }

            foreach (var statement in batch)
            {
                commands.BatchCommands.Add(statement.Command());
            }

            // The rows are kept and reported only once the whole transaction has committed.
            await using var rows = await commands.ExecuteReaderAsync(CancellationToken.None);
            if (!durable)
            {
                await rows.NextResultAsync(CancellationToken.None);
            }

            foreach (var statement in batch)
            {
                await rows.ReadAsync(CancellationToken.None);
                statement.Read(rows);
                await rows.NextResultAsync(CancellationToken.None);
            }
        }

        foreach (var statement in batch)
        {
            statement.Commit();
        }
    }

    private abstract class Statement(Guid customerId, bool durable)
    {
        public Guid CustomerId { get; } = customerId;

        public bool Durable { get; } = durable;

        public abstract NpgsqlBatchCommand Command();

        public abstract void Read(NpgsqlDataReader row);

        public abstract void Commit();

        public abstract Task RunAloneAsync(NpgsqlDataSource dataSource);

        public abstract void Fail(Exception exception);
    }

    private sealed class Statement<T>(Guid customerId, bool durable, PositionalStatement statement, Action<NpgsqlParameterCollection> bind, Func<NpgsqlDataReader, T> read)
        : Statement(customerId, durable)
    {
        private T? _row;

        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override NpgsqlBatchCommand Command() => statement.CreateBatchCommand(bind);

        public override void Read(NpgsqlDataReader row) => _row = read(row);

        public override void Commit() => Completion.TrySetResult(_row!);

        public override async Task RunAloneAsync(NpgsqlDataSource dataSource)
        {
            try
            {
                Completion.TrySetResult(await statement.QueryRowAsync(dataSource, bind, read));
            }
            catch (Exception exception)
            {
                Completion.TrySetException(exception);
            }
        }

        public override void Fail(Exception exception) => Completion.TrySetException(exception);
    }
}
