using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Npgsql;

namespace CmpWaldurAdapter.IntegrationTests.Credits;

/// <summary>
/// The ledger's group commit on PostgreSQL: statements that queue behind busy batches commit together in one
/// transaction, and a batch that fails commits nothing, after which each statement runs alone, exactly once.
/// </summary>
public sealed class GroupCommitTests : IAsyncLifetime
{
    private static readonly PositionalStatement Sleep = new("SELECT pg_sleep(@seconds)::text");
    private static readonly PositionalStatement Insert = new("INSERT INTO group_probe (name, tx) VALUES (@name, txid_current()) RETURNING name");
    private static readonly PositionalStatement Fail = new("SELECT (1 / (@zero::int))::text");
    private static readonly PositionalStatement Setting = new("SELECT current_setting('synchronous_commit') || left(@name, 0) || left(pg_sleep(@seconds)::text, 0)");

    private TestDatabase _database = null!;
    private NpgsqlDataSource _dataSource = null!;
    private GroupCommit _group = null!;

    public async Task InitializeAsync()
    {
        _database = await TestDatabase.CreateMigratedAsync(DatabaseProvider.Postgres);
        _dataSource = NpgsqlDataSource.Create(_database.ConnectionString);
        await using var create = _dataSource.CreateCommand("CREATE TABLE group_probe (name text PRIMARY KEY, tx bigint NOT NULL)");
        await create.ExecuteNonQueryAsync();
        _group = new GroupCommit(_dataSource);
    }

    public async Task DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await _database.DisposeAsync();
    }

    private Task<string> RunAsync(PositionalStatement statement, string name, object value) =>
        _group.RunAsync(Guid.NewGuid(), statement, parameters => parameters.Add(new NpgsqlParameter(name, value)), row => row.GetString(0));

    /// <summary>Both batch runners busy for a moment, so what comes next has to queue.</summary>
    private List<Task<string>> OccupyRunners() =>
        [.. Enumerable.Range(0, GroupCommit.InFlight).Select(_ => RunAsync(Sleep, "seconds", 0.3))];

    private async Task<List<(string Name, long Tx)>> ProbeAsync()
    {
        await using var command = _dataSource.CreateCommand("SELECT name, tx FROM group_probe ORDER BY name");
        await using var rows = await command.ExecuteReaderAsync();
        var probe = new List<(string, long)>();
        while (await rows.ReadAsync())
        {
            probe.Add((rows.GetString(0), rows.GetInt64(1)));
        }

        return probe;
    }

    [Fact]
    public async Task Statements_queued_behind_busy_batches_commit_together_in_one_transaction()
    {
        var busy = OccupyRunners();
        var queued = new[] { "a", "b", "c", "d", "e" }.Select(name => RunAsync(Insert, "name", name)).ToList();

        Assert.Equal(["a", "b", "c", "d", "e"], await Task.WhenAll(queued));
        await Task.WhenAll(busy);
        var probe = await ProbeAsync();
        Assert.Equal(["a", "b", "c", "d", "e"], probe.Select(p => p.Name));
        Assert.Single(probe.Select(p => p.Tx).Distinct());
    }

    [Fact]
    public async Task A_failing_batch_commits_nothing_and_each_statement_then_runs_alone_once()
    {
        var busy = OccupyRunners();
        var first = RunAsync(Insert, "name", "x");
        var failing = RunAsync(Fail, "zero", 0);
        var last = RunAsync(Insert, "name", "y");

        // Had the batch's inserts committed, running them alone would break the primary key.
        Assert.Equal("x", await first);
        Assert.Equal("y", await last);
        var error = await Assert.ThrowsAsync<PostgresException>(() => failing);
        Assert.Equal(PostgresErrorCodes.DivisionByZero, error.SqlState);
        await Task.WhenAll(busy);
        var probe = await ProbeAsync();
        Assert.Equal(["x", "y"], probe.Select(p => p.Name));
        Assert.Equal(2, probe.Select(p => p.Tx).Distinct().Count());
    }

    [Fact]
    public async Task Batches_of_statements_that_need_not_be_durable_commit_without_waiting_for_the_flush_and_leave_the_session_as_it_was()
    {
        // One pooled session without reset, as the ledger's pool: a setting that outlived its batch would show in the last look.
        // The session starts durable (the test cluster itself runs with synchronous_commit=off).
        var builder = new NpgsqlConnectionStringBuilder(_database.ConnectionString) { MaxPoolSize = 1, NoResetOnClose = true, Options = "-c synchronous_commit=on" };
        await using var session = NpgsqlDataSource.Create(builder);
        var group = new GroupCommit(session);
        Task<string> Run(string name, bool durable, double sleep = 0) =>
            group.RunAsync(Guid.NewGuid(), Setting, parameters =>
            {
                parameters.Add(new NpgsqlParameter("name", name));
                parameters.Add(new NpgsqlParameter("seconds", sleep));
            }, row => row.GetString(0), durable);

        var alone = await Run("alone", durable: false);
        var busy = Run("busy", durable: false, sleep: 0.3);
        var together = Enumerable.Range(0, 20).Select(i => Run($"together-{i}", durable: false)).ToList();
        await busy;
        var busyAgain = Run("busy", durable: false, sleep: 0.3);
        var mixed = Enumerable.Range(0, 5).Select(i => Run($"mixed-{i}", durable: i == 2)).ToList();
        await busyAgain;
        var durableAlone = await Run("durable", durable: true);
        await using var look = session.CreateCommand("SHOW synchronous_commit");
        var afterwards = (string)(await look.ExecuteScalarAsync())!;

        Assert.Equal("off", alone);
        Assert.All(await Task.WhenAll(together), setting => Assert.Equal("off", setting));
        // One durable statement makes its whole batch wait for the flush.
        Assert.All(await Task.WhenAll(mixed), setting => Assert.Equal("on", setting));
        Assert.Equal("on", durableAlone);
        Assert.Equal("on", afterwards);
    }

    [Fact]
    public async Task A_failing_batch_of_statements_that_need_not_be_durable_still_runs_each_statement_alone_once()
    {
        Task<string> Run(PositionalStatement statement, string name, object value) =>
            _group.RunAsync(Guid.NewGuid(), statement, parameters => parameters.Add(new NpgsqlParameter(name, value)), row => row.GetString(0), durable: false);

        var busy = Run(Sleep, "seconds", 0.3);
        var first = Run(Insert, "name", "x");
        var failing = Run(Fail, "zero", 0);
        var last = Run(Insert, "name", "y");

        Assert.Equal("x", await first);
        Assert.Equal("y", await last);
        Assert.Equal(PostgresErrorCodes.DivisionByZero, (await Assert.ThrowsAsync<PostgresException>(() => failing)).SqlState);
        await busy;
        Assert.Equal(["x", "y"], (await ProbeAsync()).Select(p => p.Name));
    }
}
