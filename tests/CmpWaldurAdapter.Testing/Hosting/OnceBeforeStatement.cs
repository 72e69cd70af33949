using System.Data.Common;
using System.Text.RegularExpressions;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// Runs something else once, just before the first statement whose SQL matches (a race staged between a look and its
/// write, where the write is no save of tracked changes). Armed by <see cref="Stage"/>; the staged action's own
/// statements pass through.
/// </summary>
public sealed class OnceBeforeStatement : DbCommandInterceptor
{
    private Staged? _staged;

    /// <summary>Whether the staged action has run.</summary>
    public bool Ran { get; private set; }

    public OnceBeforeStatement Stage(Regex statement, Func<Task> meanwhile)
    {
        _staged = new Staged(statement, meanwhile);
        return this;
    }

    public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<DbDataReader> result,
        CancellationToken cancellationToken = default)
    {
        await RunIfMatchesAsync(command);
        return result;
    }

    public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result,
        CancellationToken cancellationToken = default)
    {
        await RunIfMatchesAsync(command);
        return result;
    }

    public override async ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<object> result,
        CancellationToken cancellationToken = default)
    {
        await RunIfMatchesAsync(command);
        return result;
    }

    private async Task RunIfMatchesAsync(DbCommand command)
    {
        if (Volatile.Read(ref _staged) is { } staged && staged.Statement.IsMatch(command.CommandText)
            && Interlocked.CompareExchange(ref _staged, null, staged) == staged)
        {
            await staged.Meanwhile();
            Ran = true;
        }
    }

    private sealed record Staged(Regex Statement, Func<Task> Meanwhile);
}
