using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

public static class CreditsServiceCollectionExtensions
{
    /// <summary>The credit ledger, its store for the configured database, funding, price books and spend alerts.</summary>
    public static IServiceCollection AddAdapterCredits(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<CreditsOptions>().Bind(configuration.GetSection(CreditsOptions.SectionName)).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<CreditsOptions>, ReservationTimeoutValidation>());
        // The catalogue (price books, components) is registered by the host.
        services.AddSingleton<PriceBooks>();

        var database = configuration.GetSection(DatabaseOptions.SectionName).Get<DatabaseOptions>() ?? new DatabaseOptions();
        services.AddSingleton<ICreditStore>(sp => database.Provider == DatabaseProvider.Postgres
            ? new PostgresCreditStore(sp.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), database.ConnectionString)
            : new SqliteCreditStore(sp.GetRequiredService<IDbContextFactory<AdapterDbContext>>(), database.ConnectionString));
        services.AddSingleton<WaldurFunding>();
        services.AddSingleton<CreditLedger>();
        services.AddSingleton<CmpWaldurAdapter.Credits.SpendAlerts.SpendAlertMonitor>();
        // The chat pipeline's credit seam (TryAdd: a test host may script it).
        services.TryAddSingleton<CmpWaldurAdapter.Chat.IChatCredits, LedgerChatCredits>();
        return services;
    }
}
