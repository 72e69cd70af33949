using System.Data.Common;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Testing.Hosting;

public static class DatabaseInterceptors
{
    /// <summary>Adds <paramref name="interceptor"/> to every database context the adapter makes on <paramref name="provider"/>.</summary>
    public static IServiceCollection AddDatabaseInterceptor(this IServiceCollection services, DatabaseProvider provider, IInterceptor interceptor) =>
        provider == DatabaseProvider.Postgres
            ? services.ConfigureDbContext<PostgresAdapterDbContext>(db => db.AddInterceptors(interceptor), ServiceLifetime.Singleton)
            : services.ConfigureDbContext<SqliteAdapterDbContext>(db => db.AddInterceptors(interceptor), ServiceLifetime.Singleton);
}

/// <summary>
/// Runs something else once, just before the first save whose changes match (a race staged between a look and its
/// write). Armed by <see cref="Stage"/>; the staged action's own saves pass through.
/// </summary>
public sealed class OnceBeforeSaving : SaveChangesInterceptor
{
    private Staged? _staged;

    /// <summary>Whether the staged action has run.</summary>
    public bool Ran { get; private set; }

    public OnceBeforeSaving Stage(Func<ChangeTracker, bool> matches, Func<Task> meanwhile)
    {
        _staged = new Staged(matches, meanwhile);
        return this;
    }

    public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _staged) is { } staged && staged.Matches(eventData.Context!.ChangeTracker)
            && Interlocked.CompareExchange(ref _staged, null, staged) == staged)
        {
            await staged.Meanwhile();
            Ran = true;
        }

        return result;
    }

    private sealed record Staged(Func<ChangeTracker, bool> Matches, Func<Task> Meanwhile);
}

/// <summary>
/// Fails the next statement (an <c>ExecuteUpdate</c> or <c>ExecuteDelete</c>) whose SQL matches, once, as a database
/// that refuses a write would. Armed by <see cref="FailNext"/>; every other statement runs.
/// </summary>
public sealed class FailingStatement : DbCommandInterceptor
{
    private Regex? _armed;

    /// <summary>Whether the armed statement has failed.</summary>
    public bool Failed { get; private set; }

    public void FailNext(Regex statement) => Volatile.Write(ref _armed, statement);

    public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _armed) is { } armed && armed.IsMatch(command.CommandText) && Interlocked.CompareExchange(ref _armed, null, armed) == armed)
        {
            Failed = true;
            throw new StagedFault($"Staged: the database refused {command.CommandText.Split('\n')[0]}");
        }

        return ValueTask.FromResult(result);
    }

    private sealed class StagedFault(string message) : DbException(message);
}

/// <summary>
/// Runs something else just before the first statement whose SQL matches, or before each of the first
/// <c>times</c> such statements (a race staged at the database, between a process's earlier statements and this one,
/// whatever it read before). Armed by <see cref="Stage"/>. The last staged run's own statements pass through; an action
/// staged more than once writes through contexts without this interceptor (another host's), or its statements would count.
/// </summary>
public sealed class BeforeStatement : DbCommandInterceptor
{
    private Staged? _staged;
    private int _ran;

    /// <summary>How many times the staged action has run.</summary>
    public int Ran => Volatile.Read(ref _ran);

    public BeforeStatement Stage(Regex statement, Func<Task> meanwhile, int times = 1)
    {
        Volatile.Write(ref _staged, new Staged(statement, meanwhile, times));
        return this;
    }

    public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
    {
        await RunIfMatchingAsync(command);
        return result;
    }

    public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
    {
        await RunIfMatchingAsync(command);
        return result;
    }

    private async Task RunIfMatchingAsync(DbCommand command)
    {
        if (Volatile.Read(ref _staged) is { } staged && staged.Statement.IsMatch(command.CommandText) && Interlocked.Decrement(ref staged.Left) >= 0)
        {
            if (staged.Left == 0)
            {
                Interlocked.CompareExchange(ref _staged, null, staged);
            }

            await staged.Meanwhile();
            Interlocked.Increment(ref _ran);
        }
    }

    private sealed class Staged(Regex statement, Func<Task> meanwhile, int times)
    {
        public int Left = times;

        public Regex Statement { get; } = statement;

        public Func<Task> Meanwhile { get; } = meanwhile;
    }
}
