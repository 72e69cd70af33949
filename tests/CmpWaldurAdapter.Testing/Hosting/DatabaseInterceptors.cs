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
