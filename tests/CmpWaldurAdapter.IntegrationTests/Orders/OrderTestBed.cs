using System.Text.Json.Nodes;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Orders;

/// <summary>A WireMock Waldur with one offering, a fresh database, and the adapter's services over them.</summary>
public sealed class OrderTestBed : IAsyncDisposable
{
    public static JsonObject Form => JsonNode.Parse("""
        {
          "order": ["agent_name", "tone", "escalate_after"],
          "options": {
            "agent_name": { "type": "string", "label": "Agent name", "required": true },
            "tone": { "type": "select_string", "label": "Tone", "choices": ["friendly", "formal"], "default": "friendly" },
            "escalate_after": { "type": "integer", "label": "Escalate after N unanswered questions", "min": 1, "max": 10 }
          }
        }
        """)!.AsObject();

    public static JsonObject ResourceOptions => JsonNode.Parse("""
        {
          "order": ["tone", "escalate_after"],
          "options": {
            "tone": { "type": "select_string", "label": "Tone", "choices": ["friendly", "formal"] },
            "escalate_after": { "type": "integer", "label": "Escalate after N unanswered questions", "min": 1, "max": 10 }
          }
        }
        """)!.AsObject();

    private OrderTestBed(WaldurFake waldur, TestDatabase database, Guid offering, ScriptedProvisioner provisioner)
    {
        Waldur = waldur;
        Database = database;
        Offering = offering;
        Provisioner = provisioner;
        Settings = AdapterTestHost.Settings(waldur, database, offering);
    }

    public WaldurFake Waldur { get; }

    public TestDatabase Database { get; }

    public Guid Offering { get; }

    public ScriptedProvisioner Provisioner { get; }

    public Dictionary<string, string?> Settings { get; }

    public CapturedLogs Logs { get; } = new();

    public IHost? Host { get; private set; }

    private RunningAdapter? _server;

    public IServiceProvider Services => (Host ?? throw new InvalidOperationException("Start the services first.")).Services;

    public OrderProcessor Processor => Services.GetRequiredService<OrderProcessor>();

    /// <param name="emptyDatabase">No migration applied yet, for tests of migrating; otherwise as <c>db migrate</c> leaves it.</param>
    public static async Task<OrderTestBed> CreateAsync(DatabaseProvider provider = DatabaseProvider.Sqlite, bool emptyDatabase = false)
    {
        var waldur = new WaldurFake();
        var offering = waldur.AddOffering("Customer Support Agent", Form, ResourceOptions);
        var database = emptyDatabase ? await TestDatabase.CreateAsync(provider) : await TestDatabase.CreateMigratedAsync(provider);
        return new OrderTestBed(waldur, database, offering, new ScriptedProvisioner());
    }

    /// <summary>
    /// Starts the adapter's services; with <paramref name="clock"/>, they and Waldur read the time from it;
    /// <paramref name="configure"/> changes them further.
    /// </summary>
    public async Task<IHost> StartServicesAsync(TimeProvider? clock = null, Action<IServiceCollection>? configure = null)
    {
        if (clock is not null)
        {
            Waldur.Time = clock;
        }

        Host = await AdapterTestHost.StartServicesAsync(Settings, Logs, services =>
        {
            UseProvisioner(services);
            if (clock is not null)
            {
                services.AddSingleton(clock);
            }

            configure?.Invoke(services);
        });
        return Host;
    }

    /// <summary>Starts the whole server (workers included); the test bed stops it when disposed.</summary>
    public async Task<RunningAdapter> StartServerAsync()
    {
        _server = await AdapterTestHost.StartServerAsync(Settings, Logs, UseProvisioner);
        Host = _server.App;
        return _server;
    }

    public void UseProvisioner(IServiceCollection services) => services.Replace(ServiceDescriptor.Singleton<ITenantProvisioner>(Provisioner));

    public JsonObject ValidAttributes(string name = "Ada") => new() { ["name"] = "my agent", ["agent_name"] = name, ["escalate_after"] = 3 };

    public async Task<T> QueryAsync<T>(Func<AdapterDbContext, Task<T>> query)
    {
        await using var db = await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return await query(db);
    }

    /// <summary>Processes an order until it stops asking to be retried (as the inbox worker would).</summary>
    public async Task<OrderOutcome> ProcessUntilSettledAsync(Guid order, int maxAttempts = 30)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await Processor.ProcessAsync(order, CancellationToken.None);
            }
            catch (OrderDeferredException) when (attempt < maxAttempts)
            {
                // Deferred while another processor holds the order: give it time, as the inbox's backoff would.
                await Task.Delay(Math.Min(200, 10 * (attempt + 1)));
            }
        }
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
            Waldur.AssertRequestsConformToSpec();
        }
        finally
        {
            Waldur.Dispose();
            await Database.DisposeAsync();
        }
    }
}
