using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;

namespace Microsoft.Extensions.DependencyInjection;

public static class PersistenceServiceCollectionExtensions
{
    /// <summary>
    /// Registers the provider's context behind <see cref="AdapterDbContext"/> and an
    /// <see cref="IDbContextFactory{AdapterDbContext}"/> for workers that need short-lived contexts.
    /// </summary>
    public static IServiceCollection AddAdapterPersistence(this IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(DatabaseOptions.SectionName).Get<DatabaseOptions>() ?? new DatabaseOptions();
        services.AddOptions<DatabaseOptions>().Bind(configuration.GetSection(DatabaseOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();

        switch (options.Provider)
        {
            case DatabaseProvider.Postgres:
                services.AddDbContextFactory<PostgresAdapterDbContext>(db => ConfigurePostgres(db, options.ConnectionString));
                services.AddSingleton<IDbContextFactory<AdapterDbContext>, Forwarding<PostgresAdapterDbContext>>();
                break;
            case DatabaseProvider.Sqlite:
                services.AddDbContextFactory<SqliteAdapterDbContext>(db => ConfigureSqlite(db, options.ConnectionString));
                services.AddSingleton<IDbContextFactory<AdapterDbContext>, Forwarding<SqliteAdapterDbContext>>();
                break;
            default:
                throw new InvalidOperationException($"Unknown database provider '{options.Provider}'.");
        }

        services.AddScoped<AdapterDbContext>(sp => sp.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContext());
        services.AddSingleton<ExpiredRowsPurge>();
        return services;
    }

    internal static void ConfigurePostgres(DbContextOptionsBuilder db, string connectionString) =>
        db.UseNpgsql(connectionString, npgsql => npgsql.MigrationsHistoryTable("__ef_migrations_history"))
          .UseSnakeCaseNamingConvention();

    internal static void ConfigureSqlite(DbContextOptionsBuilder db, string connectionString) =>
        db.UseSqlite(connectionString, sqlite => sqlite.MigrationsHistoryTable("__ef_migrations_history"))
          .UseSnakeCaseNamingConvention();

    private sealed class Forwarding<TContext>(IDbContextFactory<TContext> inner) : IDbContextFactory<AdapterDbContext>
        where TContext : AdapterDbContext
    {
        public AdapterDbContext CreateDbContext() => inner.CreateDbContext();
    }
}
