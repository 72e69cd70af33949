using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Testing.Web;

/// <summary>
/// The whole adapter on a loopback port serving the shipped catalogue's four offerings, with fake agents behind
/// the chat seams (<see cref="IAgentRuntime"/>, <see cref="IAgentTweaks"/>, <see cref="IKnowledgeRetriever"/>,
/// <see cref="IDemoAgent"/>), for the buyer pages.
/// </summary>
public sealed class BuyerWebTestBed : IAsyncDisposable
{
    public static readonly string[] Slugs = ["code-assistant", "customer-support-agent", "research-agent", "topic-assistant"];

    private readonly StrongBox<Uri> _publicUrl = new(new Uri("http://127.0.0.1/"));

    private BuyerWebTestBed(TestDatabase database, TestClock? clock)
    {
        Database = database;
        Clock = clock;
        foreach (var slug in Slugs)
        {
            Offerings[slug] = Waldur.AddOffering(slug);
        }

        Settings = AdapterTestHost.Settings(Waldur, database, [.. Slugs.Select(s => Offerings[s])]);
        for (var i = 0; i < Slugs.Length; i++)
        {
            Settings[$"Offerings:{i}:Slug"] = Slugs[i];
        }

        Settings["Catalogue:Directory"] = Path.Combine(AppContext.BaseDirectory, "catalogue");
        Settings["Web:HomePortUrl"] = "https://homeport.example.org/";
    }

    public WaldurFake Waldur { get; } = new();

    public TestDatabase Database { get; }

    public TestClock? Clock { get; }

    public Dictionary<string, Guid> Offerings { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, string?> Settings { get; }

    /// <summary>
    /// The adapter's public address (<c>Web:PublicBaseUrl</c>) when it is not the one it listens on: an https one, as
    /// behind a TLS-ending proxy. Links it hands out then name it, so tests follow their path on <see cref="Url"/>.
    /// </summary>
    public Uri? PublicBaseUrl { get; set; }

    public EchoAgent Agent { get; } = new();

    public RunningAdapter Server { get; private set; } = null!;

    public Uri Url => Server.Url;

    public IServiceProvider Services => Server.Services;

    public static async Task<BuyerWebTestBed> CreateAsync(DatabaseProvider provider = DatabaseProvider.Sqlite, DateTimeOffset? now = null) =>
        new(await TestDatabase.CreateMigratedAsync(provider), now is { } start ? new TestClock(start) : null);

    public async Task<RunningAdapter> StartAsync(Action<IServiceCollection>? configure = null)
    {
        Server = await StartHostAsync(configure);
        _publicUrl.Value = Server.Url;
        return Server;
    }

    /// <summary>Another replica on the same database and fakes (stopped with the bed).</summary>
    public async Task<RunningAdapter> StartReplicaAsync()
    {
        var replica = await StartHostAsync(null);
        _replicas.Add(replica);
        return replica;
    }

    private readonly List<RunningAdapter> _replicas = [];

    private async Task<RunningAdapter> StartHostAsync(Action<IServiceCollection>? configure) =>
        await AdapterTestHost.StartServerAsync(Settings, null, services =>
        {
            configure?.Invoke(services);
            if (Clock is not null)
            {
                services.AddSingleton<TimeProvider>(Clock);
            }

            services.AddSingleton<IAgentRuntime>(Agent);
            services.AddSingleton<IAgentTweaks>(Agent);
            services.AddSingleton<IKnowledgeRetriever>(Agent);
            services.AddSingleton<IDemoAgent>(Agent);
            // Links the adapter hands out name the address it actually listens on.
            services.PostConfigure<WebOptions>(o => o.PublicBaseUrl = PublicBaseUrl ?? _publicUrl.Value!);
        });

    /// <summary>An active subscription of the offering, in a new organization holding <paramref name="credits"/>.</summary>
    public async Task<Subscription> AddSubscriptionAsync(string slug = "customer-support-agent", long credits = 100, JsonObject? configuration = null)
    {
        var now = DateTimeOffset.UtcNow;
        var customer = new Customer { Id = Guid.NewGuid(), Name = "Buyer", CreatedAt = now, UpdatedAt = now };
        var workspace = new Workspace { Id = Guid.NewGuid(), CustomerId = customer.Id, Name = "Project", CreatedAt = now, UpdatedAt = now };
        var subscription = new Subscription
        {
            Id = Guid.NewGuid(),
            ResourceUuid = Guid.NewGuid(),
            OfferingUuid = Offerings[slug],
            CustomerId = customer.Id,
            WorkspaceId = workspace.Id,
            Name = "My agent",
            State = SubscriptionState.Active,
            Configuration = (configuration ?? new JsonObject { ["agent_name"] = "Ada" }).ToJsonString(),
            ConfigurationVersion = 1,
            CreatedAt = now,
            UpdatedAt = now,
        };
        await using (var db = await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync())
        {
            db.Customers.Add(customer);
            db.Workspaces.Add(workspace);
            db.Subscriptions.Add(subscription);
            await db.SaveChangesAsync();
        }

        Waldur.AddResource(subscription.ResourceUuid, subscription.OfferingUuid, customer.Id, workspace.Id);
        if (credits > 0)
        {
            await Services.GetRequiredService<CreditLedger>().GrantAsync(customer.Id, credits, "test credits");
        }

        return subscription;
    }

    public Task<Uri> ConsoleLinkAsync(Guid subscriptionId) => Services.GetRequiredService<ConsoleAccess>().CreateLinkAsync(subscriptionId, CancellationToken.None);

    public async Task<string> PublishableKeyAsync(Guid subscriptionId) =>
        (await Services.GetRequiredService<ApiKeyService>().CreateAsync(subscriptionId, ApiKeyKind.Publishable, "widget", CancellationToken.None)).Plaintext;

    public async Task<string> SecretKeyAsync(Guid subscriptionId) =>
        (await Services.GetRequiredService<ApiKeyService>().CreateAsync(subscriptionId, ApiKeyKind.Secret, "server", CancellationToken.None)).Plaintext;

    public Task AllowDomainsAsync(Guid subscriptionId, params string[] domains) =>
        Services.GetRequiredService<BuyerWebStore>().UpdateAsync(subscriptionId, s => s.AllowedDomains = string.Join('\n', domains), CancellationToken.None);

    /// <summary>
    /// Reads the database once every answer already sent, by this adapter or a replica, is settled (answers go out
    /// before their charge is written).
    /// </summary>
    public async Task<T> QueryAsync<T>(Func<AdapterDbContext, Task<T>> query)
    {
        await Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync();
        foreach (var replica in _replicas)
        {
            await replica.Services.GetRequiredService<AnswerSettlements>().WhenSettledAsync();
        }

        await using var db = await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return await query(db);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync();
        }

        if (Server is not null)
        {
            await Server.DisposeAsync();
        }

        Waldur.Dispose();
        await Database.DisposeAsync();
    }
}

/// <summary>
/// A fake agent: answers "&lt;agent name&gt;: you said …" from the tweaks built from the subscription's
/// configuration, and "Demo of &lt;offering&gt;: …" in try mode. Records every run.
/// </summary>
public sealed class EchoAgent : IAgentRuntime, IAgentTweaks, IKnowledgeRetriever, IDemoAgent
{
    public ConcurrentQueue<AgentRequest> Runs { get; } = new();

    public ConcurrentQueue<string> DemoSessions { get; } = new();

    /// <summary>While set, a run fails (as an unreachable runtime does) without being recorded.</summary>
    public bool RunFails { get; set; }

    /// <summary>While set, a run waits for it to complete (or for its request to be cancelled).</summary>
    public TaskCompletionSource? RunGate { get; set; }

    /// <summary>Completed when a run starts waiting at <see cref="RunGate"/>.</summary>
    public TaskCompletionSource RunWaiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task<string> RunAsync(AgentRequest request, CancellationToken cancellationToken)
    {
        if (RunFails)
        {
            throw new AgentUnavailableException("the agent is down", transient: true);
        }

        if (RunGate is { } gate)
        {
            RunWaiting.TrySetResult();
            await gate.Task.WaitAsync(cancellationToken);
        }

        Runs.Enqueue(request);
        var name = request.Tweaks.TryGetValue("agent", out var agent) ? agent["name"] : "agent";
        return $"{name}: you said {request.Input}";
    }

    public async IAsyncEnumerable<string> StreamAsync(AgentRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        yield return await RunAsync(request, cancellationToken);
    }

    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, object?>> Build(AgentTweakInput input) =>
        new Dictionary<string, IReadOnlyDictionary<string, object?>>
        {
            ["agent"] = new Dictionary<string, object?> { ["name"] = input.Configuration["agent_name"]?.ToString() ?? input.Offering.Name },
        };

    public Task<IReadOnlyList<KnowledgeChunk>> RetrieveAsync(Subscription subscription, string query, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<KnowledgeChunk>>([]);

    /// <summary>While set, the demo agent fails to answer (as an unreachable runtime does).</summary>
    public bool DemoFails { get; set; }

    /// <summary>While set, a demo run waits for it to complete (or for its request to be cancelled).</summary>
    public TaskCompletionSource? DemoGate { get; set; }

    /// <summary>Completed when a demo run starts waiting at <see cref="DemoGate"/>.</summary>
    public TaskCompletionSource DemoWaiting { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async Task<string> AnswerAsync(CatalogueEntry offering, string sessionId, string input, CancellationToken cancellationToken)
    {
        if (DemoFails)
        {
            throw new AgentUnavailableException("the demo agent is down", transient: true);
        }

        if (DemoGate is { } gate)
        {
            DemoWaiting.TrySetResult();
            await gate.Task.WaitAsync(cancellationToken);
        }

        DemoSessions.Enqueue(sessionId);
        return $"Demo of {offering.Name}: you said {input}";
    }
}
