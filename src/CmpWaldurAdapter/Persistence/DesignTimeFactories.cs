using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Persistence;

/// <summary>Used only by <c>dotnet ef migrations add</c>; the connection strings are never opened.</summary>
internal sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresAdapterDbContext>
{
    public PostgresAdapterDbContext CreateDbContext(string[] args)
    {
        var builder = new DbContextOptionsBuilder<PostgresAdapterDbContext>();
        PersistenceServiceCollectionExtensions.ConfigurePostgres(builder, "Host=localhost;Database=design");
        return new PostgresAdapterDbContext(builder.Options);
    }
}

internal sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteAdapterDbContext>
{
    public SqliteAdapterDbContext CreateDbContext(string[] args)
    {
        var builder = new DbContextOptionsBuilder<SqliteAdapterDbContext>();
        PersistenceServiceCollectionExtensions.ConfigureSqlite(builder, "Data Source=design.db");
        return new SqliteAdapterDbContext(builder.Options);
    }
}
