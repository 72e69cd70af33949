using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Knowledge;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Testing.Chat;

/// <summary>
/// The adapter's server in front of the fast Kestrel <see cref="LangflowRunFake"/> (runs and retrieval):
/// subscriptions are seeded straight into the database as provisioning leaves them (a flow id, a dataset id
/// and the workspace's encrypted Langflow key). For streams that trickle and clients that leave mid-stream.
/// </summary>
public sealed class ChatGatewayBed : IAsyncDisposable
{
    public const string Slug = "customer-support-agent";

    private ChatGatewayBed(LangflowRunFake upstream, WaldurFake waldur, Guid offering, TestDatabase database, RunningAdapter server)
    {
        Upstream = upstream;
        Offering = offering;
        Waldur = waldur;
        Database = database;
        Server = server;
    }

    public LangflowRunFake Upstream { get; }

    public WaldurFake Waldur { get; }

    public Guid Offering { get; }

    public TestDatabase Database { get; }

    public RunningAdapter Server { get; }

    public static async Task<ChatGatewayBed> StartAsync(DatabaseProvider provider = DatabaseProvider.Sqlite, Action<Dictionary<string, string?>>? configure = null, CapturedLogs? logs = null, Action<IServiceCollection>? services = null)
    {
        var upstream = await LangflowRunFake.StartAsync();
        var waldur = new WaldurFake();
        var offering = waldur.AddOffering("Customer Support Agent");
        var database = await TestDatabase.CreateMigratedAsync(provider);
        var settings = AdapterTestHost.Settings(waldur, database, offering);
        settings["Offerings:0:Slug"] = Slug;
        settings["Langflow:BaseUrl"] = upstream.Url.ToString();
        settings["Langflow:SuperuserUsername"] = "unused";
        settings["Langflow:SuperuserPassword"] = "unused";
        settings["Ragflow:BaseUrl"] = upstream.Url.ToString();
        settings["Ragflow:ApiKey"] = "ragflow-unused";
        configure?.Invoke(settings);
        var server = await AdapterTestHost.StartServerAsync(settings, logs, services);
        return new ChatGatewayBed(upstream, waldur, offering, database, server);
    }

    /// <summary>An active subscription of a new organization, as provisioned, with credits and a secret key.</summary>
    public async Task<(Subscription Subscription, string Key)> SubscribeAsync(long credits)
    {
        var now = DateTimeOffset.UtcNow;
        var customer = new Customer { Id = Guid.NewGuid(), Name = "Buyer", CreatedAt = now, UpdatedAt = now };
        var workspace = new Workspace
        {
            Id = Guid.NewGuid(),
            CustomerId = customer.Id,
            Name = "Project",
            LangflowUserId = Guid.NewGuid().ToString(),
            LangflowApiKeyId = Guid.NewGuid().ToString(),
            LangflowApiKeyCipher = Server.Services.GetRequiredService<UpstreamCredentials>().Protect("sk-tenant-" + Guid.NewGuid().ToString("N")),
            CreatedAt = now,
            UpdatedAt = now,
        };
        var subscription = new Subscription
        {
            Id = Guid.NewGuid(),
            ResourceUuid = Guid.NewGuid(),
            OfferingUuid = Offering,
            CustomerId = customer.Id,
            WorkspaceId = workspace.Id,
            Name = "agent",
            State = SubscriptionState.Active,
            Configuration = """{"agent_name":"Ada","tone":"friendly","language":"en"}""",
            LangflowFlowId = Guid.NewGuid().ToString(),
            RagflowDatasetId = Guid.NewGuid().ToString("N"),
            CreatedAt = now,
            UpdatedAt = now,
        };
        await using (var db = await Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync())
        {
            db.Customers.Add(customer);
            db.Workspaces.Add(workspace);
            db.Subscriptions.Add(subscription);
            await db.SaveChangesAsync();
        }

        // Its messages search its knowledge base, as a subscription with documents does.
        await Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().ParsedDocumentAsync(subscription.Id);

        if (credits > 0)
        {
            await Server.Services.GetRequiredService<CreditLedger>().GrantAsync(customer.Id, credits, "test credits");
        }

        var key = await Server.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "gateway", CancellationToken.None);
        return (subscription, key.Plaintext);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Upstream.DisposeAsync();
        Waldur.Dispose();
        await Database.DisposeAsync();
    }
}
