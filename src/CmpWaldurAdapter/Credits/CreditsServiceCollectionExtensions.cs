using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

public static class CreditsServiceCollectionExtensions
{
    /// <summary>The credit ledger, its store for the configured database, funding and price books.</summary>
    public static IServiceCollection AddAdapterCredits(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<CreditsOptions>().Bind(configuration.GetSection(CreditsOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<CatalogueOptions>().Bind(configuration.GetSection(CatalogueOptions.SectionName));
        services.TryAddSingleton<OfferingCatalogue>();
        services.AddSingleton<PriceBooks>();

        var database = configuration.GetSection(DatabaseOptions.SectionName).Get<DatabaseOptions>() ?? new DatabaseOptions();
        services.AddSingleton<ICreditStore>(sp => database.Provider == DatabaseProvider.Postgres
            ? new PostgresCreditStore(sp.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), database.ConnectionString)
            : new SqliteCreditStore(sp.GetRequiredService<IDbContextFactory<AdapterDbContext>>()));
        services.AddSingleton<WaldurFunding>();
        services.AddSingleton<CreditLedger>();
        return services;
    }
}
