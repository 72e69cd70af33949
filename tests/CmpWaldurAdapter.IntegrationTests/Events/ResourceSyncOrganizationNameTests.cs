using System.Data.Common;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Events;

public sealed class ResourceSyncOrganizationNameOnSqliteTests() : ResourceSyncOrganizationNameTests(DatabaseProvider.Sqlite);

public sealed class ResourceSyncOrganizationNameOnPostgresTests() : ResourceSyncOrganizationNameTests(DatabaseProvider.Postgres);

/// <summary>
/// The periodic resource sync names organizations recorded without a name from the organization name Waldur lists
/// with their resources: no request to Waldur beyond the listing, one update per nameless organization at most.
/// </summary>
public abstract partial class ResourceSyncOrganizationNameTests(DatabaseProvider provider) : IAsyncLifetime
{
    private readonly CustomerUpdates _customerUpdates = new();
    private CreditTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(provider);
        await _bed.StartAsync(services => services.AddDatabaseInterceptor(provider, _customerUpdates));
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    /// <summary>A subscription of <paramref name="organization"/> for a resource Waldur lists under it (as "Buyer organization").</summary>
    private async Task AddResourceAsync(Guid organization)
    {
        var resource = Guid.NewGuid();
        var subscription = await _bed.AddSubscriptionAsync(customer: organization, resource: resource);
        _bed.Waldur.AddResource(resource, _bed.Offering, organization, subscription.WorkspaceId);
    }

    [Fact]
    public async Task A_sweep_names_a_nameless_organization_from_its_resources_keeps_a_named_one_and_asks_Waldur_nothing_more()
    {
        // Credits granted before the first order record the organization without a name.
        var nameless = Guid.NewGuid();
        await _bed.Ledger.GrantAsync(nameless, 10, "granted before the first order");
        var named = Guid.NewGuid();
        await _bed.QueryAsync(db =>
        {
            db.Customers.Add(new Customer { Id = named, Name = "Kept name", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow });
            return db.SaveChangesAsync();
        });
        await AddResourceAsync(nameless);
        await AddResourceAsync(nameless);
        await AddResourceAsync(named);
        var requestsBefore = _bed.Waldur.Upstream.Requests.Count();
        _customerUpdates.Count = 0;

        var changed = await _bed.Services.GetRequiredService<ResourceStateSync>().SyncAllAsync(CancellationToken.None);

        var names = await _bed.QueryAsync(db => db.Customers.AsNoTracking().Where(c => c.Id == nameless || c.Id == named).ToDictionaryAsync(c => c.Id, c => c.Name));
        Assert.Equal(new Dictionary<Guid, string> { [nameless] = "Buyer organization", [named] = "Kept name" }, names);
        Assert.Equal(0, changed);
        // One page of the offering's resources, and nothing else: no lookup of the organization.
        Assert.Equal([("GET", "/api/marketplace-provider-resources/")], _bed.Waldur.Upstream.Requests.Skip(requestsBefore).Select(r => (r.Method, r.Path)));
        Assert.Equal(1, _customerUpdates.Count);
        Assert.Equal(10, (await _bed.Ledger.BalanceAsync(nameless)).Balance);
    }

    /// <summary>Counts the statements that update organizations' rows.</summary>
    private sealed partial class CustomerUpdates : DbCommandInterceptor
    {
        private int _count;

        public int Count
        {
            get => Volatile.Read(ref _count);
            set => Volatile.Write(ref _count, value);
        }

        public override ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            if (UpdateOfCustomers().IsMatch(command.CommandText))
            {
                Interlocked.Increment(ref _count);
            }

            return ValueTask.FromResult(result);
        }

        [GeneratedRegex("""^\s*UPDATE\s+"?customers"?\s""", RegexOptions.IgnoreCase)]
        private static partial Regex UpdateOfCustomers();
    }
}
