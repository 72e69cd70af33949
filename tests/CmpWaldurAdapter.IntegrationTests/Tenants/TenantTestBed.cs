using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>
/// WireMock fakes of Waldur, Langflow and RAGFlow, a fresh database, and the adapter's services composed as
/// production composes them when Langflow is configured: orders provision real tenants on the fakes.
/// </summary>
public sealed class TenantTestBed : IAsyncDisposable
{
    public const string OfferingName = "Customer Support Agent";
    public const string Slug = "customer-support-agent";

    public static JsonObject Form => JsonNode.Parse("""
        {
          "order": ["agent_name", "tone", "language", "escalate_after", "brand_colour", "citations", "instructions"],
          "options": {
            "agent_name": { "type": "string", "label": "Agent name", "required": true },
            "tone": { "type": "select_string", "label": "Tone", "choices": ["friendly", "professional", "concise"], "default": "friendly" },
            "language": { "type": "select_string", "label": "Language", "choices": ["en", "de", "et"], "default": "en" },
            "escalate_after": { "type": "integer", "label": "Escalate after N unanswered questions", "min": 1, "max": 20 },
            "brand_colour": { "type": "string", "label": "Brand colour (hex)" },
            "citations": { "type": "boolean", "label": "Cite source documents in answers" },
            "instructions": { "type": "text", "label": "Extra instructions for the agent" }
          }
        }
        """)!.AsObject();

    private RunningAdapter? _server;

    private TenantTestBed(WaldurFake waldur, LangflowFake langflow, RagflowFake ragflow, TestDatabase database, Guid offering)
    {
        Waldur = waldur;
        Langflow = langflow;
        Ragflow = ragflow;
        Database = database;
        Offering = offering;
        Settings = AdapterTestHost.Settings(waldur, database, offering).WithUpstreams(langflow, ragflow);
        Settings["Offerings:0:Slug"] = Slug;
    }

    public WaldurFake Waldur { get; }

    public LangflowFake Langflow { get; }

    public RagflowFake Ragflow { get; }

    public TestDatabase Database { get; }

    public Guid Offering { get; }

    public Dictionary<string, string?> Settings { get; }

    public CapturedLogs Logs { get; } = new();

    public IHost? Host { get; private set; }

    public IServiceProvider Services => (Host ?? throw new InvalidOperationException("Start the services first.")).Services;

    public OrderProcessor Processor => Services.GetRequiredService<OrderProcessor>();

    public UpstreamCredentials Credentials => Services.GetRequiredService<UpstreamCredentials>();

    public static async Task<TenantTestBed> CreateAsync(DatabaseProvider provider = DatabaseProvider.Sqlite)
    {
        var waldur = new WaldurFake();
        var offering = waldur.AddOffering(OfferingName, Form, Form);
        return new TenantTestBed(waldur, new LangflowFake(), new RagflowFake(), await TestDatabase.CreateMigratedAsync(provider), offering);
    }

    public async Task<IHost> StartServicesAsync()
    {
        Host = await AdapterTestHost.StartServicesAsync(Settings, Logs);
        return Host;
    }

    public async Task<RunningAdapter> StartServerAsync(Action<IServiceCollection>? services = null)
    {
        _server = await AdapterTestHost.StartServerAsync(Settings, Logs, services);
        Host = _server.App;
        return _server;
    }

    public static JsonObject Attributes(string agentName = "Ada", string tone = "friendly") =>
        new() { ["name"] = "my agent", ["agent_name"] = agentName, ["tone"] = tone, ["escalate_after"] = 3, ["brand_colour"] = "#2563eb" };

    /// <summary>Reads the database once every answer already sent is settled (answers go out before their charge is written).</summary>
    public async Task<T> QueryAsync<T>(Func<AdapterDbContext, Task<T>> query)
    {
        await Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync();
        await using var db = await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return await query(db);
    }

    public Task<Subscription> SubscriptionAsync(Guid resource) =>
        QueryAsync(db => db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource));

    public Task<Workspace> WorkspaceAsync(Guid project) =>
        QueryAsync(db => db.Workspaces.AsNoTracking().SingleAsync(w => w.Id == project));

    /// <summary>Processes an order until it stops asking to be retried (as the inbox worker would).</summary>
    public async Task<(OrderOutcome Outcome, int Deferrals)> ProcessUntilSettledAsync(Guid order, int maxAttempts = 30)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return (await Processor.ProcessAsync(order, CancellationToken.None), attempt);
            }
            catch (OrderDeferredException) when (attempt < maxAttempts)
            {
                // Deferred behind another order of the same project: give it time, as the inbox's backoff would.
                await Task.Delay(Math.Min(200, 10 * (attempt + 1)));
            }
        }
    }

    /// <summary>The Create order for a new resource of the offering, processed to the end; returns the resource.</summary>
    public async Task<Guid> SubscribeAsync(JsonObject? attributes = null, Guid? customer = null, Guid? project = null)
    {
        var order = Waldur.PlaceCreateOrder(Offering, attributes ?? Attributes(), customer, project);
        var (outcome, _) = await ProcessUntilSettledAsync(order);
        Assert.Equal(OrderOutcome.Completed, outcome);
        return Waldur.ResourceOf(order);
    }

    /// <summary>
    /// Every request the fakes received since <paramref name="since"/>, merged in arrival order, as
    /// "upstream: METHOD /path?query" (decoded) with ids replaced by readable names.
    /// </summary>
    public List<string> Calls(IReadOnlyDictionary<string, string> names, DateTime? since = null, bool includeWaldur = false)
    {
        var sources = new List<(string Name, FakeUpstream Fake)> { ("langflow", Langflow.Upstream), ("ragflow", Ragflow.Upstream) };
        if (includeWaldur)
        {
            sources.Add(("waldur", Waldur.Upstream));
        }

        return sources
            .SelectMany(source => source.Fake.Requests.Select(r => (source.Name, Request: r)))
            .Where(x => since is null || x.Request.DateTime >= since)
            .OrderBy(x => x.Request.DateTime)
            .Select(x => $"{x.Name}: {x.Request.Method} {Rename(Uri.UnescapeDataString(x.Request.ToHttpRequestRecord().PathAndQuery), names)}")
            .ToList();
    }

    private static string Rename(string text, IReadOnlyDictionary<string, string> names) =>
        names.Where(n => !string.IsNullOrEmpty(n.Key)).Aggregate(text, (current, name) => current.Replace(name.Key, name.Value, StringComparison.OrdinalIgnoreCase));

    /// <summary>The dead process could not release its lease; it expires.</summary>
    public Task ExpireLeasesAsync() => QueryAsync(db => db.Orders.ExecuteUpdateAsync(set => set
        .SetProperty(o => o.LeaseOwner, "a-process-that-died")
        .SetProperty(o => o.LeaseExpiresAt, DateTimeOffset.UtcNow.AddSeconds(-1))));

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
            Langflow.AssertRequestsConformToSpec();
            Ragflow.AssertRequestsConformToSpec();
        }
        finally
        {
            Waldur.Dispose();
            Langflow.Dispose();
            Ragflow.Dispose();
            await Database.DisposeAsync();
        }
    }
}
