using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace CmpWaldurAdapter.Testing.Credits;

/// <summary>
/// A fresh database, a WireMock Waldur with one served offering (the <see cref="TestCatalogue"/> entry),
/// and the adapter's services; subscriptions are seeded straight into the database.
/// </summary>
public sealed class CreditTestBed : IAsyncDisposable
{
    private CreditTestBed(DatabaseProvider provider, TestDatabase database, TestClock? clock)
    {
        Provider = provider;
        Database = database;
        Clock = clock;
        if (clock is not null)
        {
            Waldur.Time = clock; // Waldur and the adapter agree on the time, as their real clocks do
        }

        Offering = Waldur.AddOffering("Studio Agent");
        Settings = AdapterTestHost.Settings(Waldur, database, Offering);
        Settings["Offerings:0:Slug"] = TestCatalogue.Slug;
        Settings["Catalogue:Directory"] = Catalogue.Directory;
    }

    public DatabaseProvider Provider { get; }

    public TestDatabase Database { get; }

    public WaldurFake Waldur { get; } = new();

    public TestCatalogue Catalogue { get; } = new();

    /// <summary>The controllable clock, when the bed was created with one.</summary>
    public TestClock? Clock { get; }

    public Guid Offering { get; }

    public Dictionary<string, string?> Settings { get; }

    public CapturedLogs Logs { get; } = new();

    public IHost? Host { get; private set; }

    public IServiceProvider Services => (Host ?? throw new InvalidOperationException("Start the services first.")).Services;

    public CreditLedger Ledger => Services.GetRequiredService<CreditLedger>();

    /// <summary>Set false by tests that check Waldur's refusals of non-conforming requests themselves.</summary>
    public bool CheckContractOnDispose { get; set; } = true;

    public static async Task<CreditTestBed> CreateAsync(DatabaseProvider provider, DateTimeOffset? now = null) =>
        new(provider, await TestDatabase.CreateMigratedAsync(provider), now is { } start ? new TestClock(start) : null);

    public async Task<IHost> StartAsync(Action<IServiceCollection>? services = null)
    {
        Host = await AdapterTestHost.StartServicesAsync(Settings, Logs, collection => Configure(collection, services));
        return Host;
    }

    /// <summary>The whole server (endpoints and workers) on a free loopback port.</summary>
    public async Task<RunningAdapter> StartServerAsync(Action<IServiceCollection>? services = null)
    {
        _server = await AdapterTestHost.StartServerAsync(Settings, Logs, collection => Configure(collection, services));
        Host = _server.App;
        return _server;
    }

    private RunningAdapter? _server;

    private void Configure(IServiceCollection collection, Action<IServiceCollection>? services)
    {
        if (Clock is not null)
        {
            collection.AddSingleton<TimeProvider>(Clock);
        }

        services?.Invoke(collection);
    }

    /// <summary>
    /// An organization with one project and an active subscription (optionally for a Waldur resource the fake knows) of
    /// <see cref="Offering"/>, or of <paramref name="offering"/>.
    /// </summary>
    public async Task<Subscription> AddSubscriptionAsync(Guid? customer = null, Guid? resource = null, SubscriptionState state = SubscriptionState.Active, Guid? id = null, Guid? offering = null)
    {
        var customerId = customer ?? Guid.NewGuid();
        var now = DateTimeOffset.UtcNow;
        await using var db = await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        if (!await db.Customers.AnyAsync(c => c.Id == customerId))
        {
            db.Customers.Add(new Customer { Id = customerId, Name = "Buyer", CreatedAt = now, UpdatedAt = now });
        }

        var workspace = new Workspace { Id = Guid.NewGuid(), CustomerId = customerId, Name = "Project", CreatedAt = now, UpdatedAt = now };
        var subscription = new Subscription
        {
            Id = id ?? Guid.NewGuid(),
            ResourceUuid = resource ?? Guid.NewGuid(),
            OfferingUuid = offering ?? Offering,
            CustomerId = customerId,
            WorkspaceId = workspace.Id,
            Name = "agent",
            State = state,
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.Workspaces.Add(workspace);
        db.Subscriptions.Add(subscription);
        await db.SaveChangesAsync();
        Waldur.KnowResource(subscription.ResourceUuid, subscription.OfferingUuid);
        return subscription;
    }

    public async Task<T> QueryAsync<T>(Func<AdapterDbContext, Task<T>> query)
    {
        await using var db = await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return await query(db);
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        else if (Host is not null)
        {
            await Host.StopAsync();
            Host.Dispose();
        }

        try
        {
            if (CheckContractOnDispose)
            {
                Waldur.AssertRequestsConformToSpec();
            }
        }
        finally
        {
            Waldur.Dispose();
            Catalogue.Dispose();
            await Database.DisposeAsync();
        }
    }
}
