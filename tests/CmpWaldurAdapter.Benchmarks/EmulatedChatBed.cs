using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>
/// The adapter's server against the product's emulators of Waldur, Langflow and RAGFlow (the sandbox's
/// upstreams): each subscriber is ordered in Waldur and provisioned by the adapter itself, so the chat
/// benchmark runs real tenants' flows and datasets, and the straight path calls the same Langflow flow
/// with the tenant's own key.
/// </summary>
internal sealed class EmulatedChatBed : IAsyncDisposable
{
    public const string Slug = "customer-support-agent";

    private readonly Guid _offering;

    private EmulatedChatBed(WaldurEmulator waldur, LangflowEmulator langflow, RagflowEmulator ragflow, Guid offering, TestDatabase database, RunningAdapter server)
    {
        Waldur = waldur;
        Langflow = langflow;
        Ragflow = ragflow;
        _offering = offering;
        Database = database;
        Server = server;
    }

    public WaldurEmulator Waldur { get; }

    public LangflowEmulator Langflow { get; }

    public RagflowEmulator Ragflow { get; }

    public TestDatabase Database { get; }

    public RunningAdapter Server { get; }

    public static async Task<EmulatedChatBed> StartAsync(DatabaseProvider provider, Action<Dictionary<string, string?>>? configure = null)
    {
        var waldur = new WaldurEmulator();
        var langflow = new LangflowEmulator();
        var ragflow = new RagflowEmulator();
        await waldur.StartAsync();
        await langflow.StartAsync();
        await ragflow.StartAsync();
        var form = JsonNode.Parse("""
            {
              "order": ["agent_name", "tone", "language"],
              "options": {
                "agent_name": { "type": "string", "label": "Agent name", "required": true },
                "tone": { "type": "select_string", "label": "Tone", "choices": ["friendly", "professional", "concise"], "default": "friendly" },
                "language": { "type": "select_string", "label": "Language", "choices": ["en", "de", "et"], "default": "en" }
              }
            }
            """)!.AsObject();
        var offering = waldur.AddOffering("Customer Support Agent", form, (JsonObject)form.DeepClone());
        var database = await TestDatabase.CreateAsync(provider);
        var settings = new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = waldur.Url.ToString(),
            ["Waldur:Token"] = WaldurEmulator.Token,
            ["Events:Enabled"] = "false",
            ["Orders:InboxCheckInterval"] = "00:00:00.100",
            ["Orders:PollInterval"] = "00:01:00",
            ["Offerings:0:Uuid"] = offering.ToString(),
            ["Offerings:0:Slug"] = Slug,
            ["Langflow:BaseUrl"] = langflow.Url.ToString(),
            ["Langflow:SuperuserUsername"] = LangflowEmulator.SuperuserUsername,
            ["Langflow:SuperuserPassword"] = LangflowEmulator.SuperuserPassword,
            ["Ragflow:BaseUrl"] = ragflow.Url.ToString(),
            ["Ragflow:ApiKey"] = RagflowEmulator.ApiKey,
            ["Serilog:MinimumLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in database.Settings)
        {
            settings[key] = value;
        }

        configure?.Invoke(settings);
        var server = await AdapterTestHost.StartServerAsync(settings);
        return new EmulatedChatBed(waldur, langflow, ragflow, offering, database, server);
    }

    /// <summary>
    /// An organization orders the agent; the adapter provisions its tenant on the emulators. Returns the secret
    /// key, and the flow and Langflow key the adapter runs for it (the straight path uses the same).
    /// </summary>
    public async Task<(Subscription Subscription, string Key, string TenantKey)> SubscribeAsync(long credits)
    {
        var attributes = new JsonObject { ["name"] = "bench agent", ["agent_name"] = "Ada", ["tone"] = "friendly", ["language"] = "en" };
        var order = Waldur.PlaceCreateOrder(_offering, attributes, Guid.NewGuid(), Guid.NewGuid());
        await Server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        try
        {
            await Eventually.TrueAsync(() => Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(60));
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException($"Order {order} is {Waldur.OrderState(order)}, not done ({Waldur.Order(order).ToJsonString()}); the adapter said:\n" + string.Join("\n", Server.Logs.Lines.TakeLast(20)));
        }

        var resource = Waldur.ResourceOf(order);
        Subscription subscription;
        Workspace workspace;
        await using (var db = await Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync())
        {
            subscription = await db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource);
            workspace = await db.Workspaces.AsNoTracking().SingleAsync(w => w.Id == subscription.WorkspaceId);
        }

        await Server.Services.GetRequiredService<CreditLedger>().GrantAsync(subscription.CustomerId, credits, "bench credits");
        var key = await Server.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "bench", CancellationToken.None);
        var tenantKey = Server.Services.GetRequiredService<Provisioning.UpstreamCredentials>().Unprotect(workspace.LangflowApiKeyCipher!);
        return (subscription, key.Plaintext, tenantKey);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Waldur.DisposeAsync();
        await Langflow.DisposeAsync();
        await Ragflow.DisposeAsync();
        await Database.DisposeAsync();
    }
}
