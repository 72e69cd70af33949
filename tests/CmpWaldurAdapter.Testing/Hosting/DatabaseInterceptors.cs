using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
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
