using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Knowledge;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>A subscriber as the chat tests use it: its subscription (as provisioned), a secret key and its organization.</summary>
public sealed record Subscriber(Guid Resource, Subscription Subscription, Workspace Workspace, string Key)
{
    public Guid Customer => Subscription.CustomerId;
}

/// <summary>What the ledger holds for one organization: the chat tests assert a failed request changes none of it.</summary>
public sealed record LedgerState(long Balance, long Reserved, int Charges, long Charged);

/// <summary>
/// The adapter's server with Langflow and RAGFlow fakes (<see cref="TenantTestBed"/>): subscriptions are
/// provisioned by real Create orders, so each has its own Langflow user, key, flow and RAGFlow dataset.
/// </summary>
public sealed class ChatTestBed : IAsyncDisposable
{
    public const string Model = TenantTestBed.Slug;

    /// <summary>The statement that stores a request's answer for its Idempotency-Key (<c>IdempotencyStore.CompleteAsync</c>), for a <see cref="FailingStatement"/>.</summary>
    public static readonly Regex StoringAnAnswer = new("""UPDATE "idempotent_requests".*SET "completed" =""", RegexOptions.Singleline);

    private ChatTestBed(TenantTestBed tenants) => Tenants = tenants;

    public TenantTestBed Tenants { get; }

    public RunningAdapter Server { get; private set; } = null!;

    public IServiceProvider Services => Server.Services;

    public static Task<ChatTestBed> StartAsync(Action<Dictionary<string, string?>>? settings = null) =>
        StartAsync((_, values) => settings?.Invoke(values));

    /// <summary>Starts with settings that may need the fakes (e.g. another Waldur offering to serve), and any services of the test's own.</summary>
    public static async Task<ChatTestBed> StartAsync(Action<TenantTestBed, Dictionary<string, string?>> configure, Action<IServiceCollection>? services = null, DatabaseProvider provider = DatabaseProvider.Sqlite)
    {
        var bed = new ChatTestBed(await TenantTestBed.CreateAsync(provider));
        configure(bed.Tenants, bed.Tenants.Settings);
        bed.Server = await bed.Tenants.StartServerAsync(services);
        return bed;
    }

    /// <summary>
    /// A new organization and project with one subscription, <paramref name="credits"/> granted, and a secret key;
    /// with <paramref name="knowledge"/>, one parsed document in its knowledge base, so that its messages search it.
    /// <paramref name="beforeProvisioning"/> gets the resource before the order is processed (to leave in the
    /// upstreams what an earlier installation left there).
    /// </summary>
    public async Task<Subscriber> SubscribeAsync(long credits = 100, System.Text.Json.Nodes.JsonObject? attributes = null, Guid? offering = null, bool knowledge = true, Action<Guid>? beforeProvisioning = null)
    {
        var customer = Guid.NewGuid();
        // Through the inbox, as the server's own worker processes orders (processing here too would race it).
        var order = Tenants.Waldur.PlaceCreateOrder(offering ?? Tenants.Offering, attributes ?? TenantTestBed.Attributes(), customer, Guid.NewGuid());
        beforeProvisioning?.Invoke(Tenants.Waldur.ResourceOf(order));
        await Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => Tenants.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(20));
        var resource = Tenants.Waldur.ResourceOf(order);
        var subscription = await Tenants.SubscriptionAsync(resource);
        if (credits > 0)
        {
            await Services.GetRequiredService<CreditLedger>().GrantAsync(subscription.CustomerId, credits, "test credits");
        }

        if (knowledge)
        {
            await Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().ParsedDocumentAsync(subscription.Id);
        }

        var key = await Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "chat tests", CancellationToken.None);
        return new Subscriber(resource, subscription, await Tenants.WorkspaceAsync(subscription.WorkspaceId), key.Plaintext);
    }

    public HttpClient Http(string? key)
    {
        var client = Server.CreateClient();
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>The official OpenAI SDK pointed at the adapter, without the SDK's own retries unless asked for (tests see each answer).</summary>
    public ChatClient OpenAi(string key, string model = Model, int retries = 0) => new(model, new ApiKeyCredential(key), OpenAiOptions(retries));

    /// <summary>The SDK's model client, as <see cref="OpenAi"/>.</summary>
    public OpenAI.Models.OpenAIModelClient OpenAiModels(string key) => new(new ApiKeyCredential(key), OpenAiOptions());

    private OpenAIClientOptions OpenAiOptions(int retries = 0) => new()
    {
        Endpoint = new Uri(Server.Url, "v1"),
        RetryPolicy = new ClientRetryPolicy(maxRetries: retries),
        NetworkTimeout = TimeSpan.FromSeconds(30),
    };

    public static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>
    /// A streamed answer read as far as it goes: its non-empty lines, and whether the connection broke before the
    /// body's end (a stream that fails midway is aborted after its error event, so that no client takes it for whole).
    /// </summary>
    public static async Task<(System.Net.HttpStatusCode Status, List<string> Lines, bool Broken)> ReadStreamAsync(HttpClient http, HttpRequestMessage request)
    {
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var lines = new List<string>();
        try
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.Length > 0)
                {
                    lines.Add(line);
                }
            }
        }
        catch (IOException)
        {
            return (response.StatusCode, lines, true);
        }

        return (response.StatusCode, lines, false);
    }

    public async Task<LedgerState> LedgerAsync(Guid customer) => await Tenants.QueryAsync(async db =>
    {
        var account = await db.CreditAccounts.AsNoTracking().SingleOrDefaultAsync(a => a.CustomerId == customer);
        var charges = await db.LedgerEntries.AsNoTracking().Where(e => e.CustomerId == customer && e.Kind == LedgerEntryKind.Charge).Select(e => e.Credits).ToListAsync();
        return new LedgerState(account?.Balance ?? 0, account?.Reserved ?? 0, charges.Count, charges.Sum(c => Math.Abs(c)));
    });

    /// <summary>
    /// What a request with an Idempotency-Key leaves when its process dies mid-run: an unfinished entry for
    /// <paramref name="body"/> (hashed as the server hashes it) under <paramref name="storedKey"/> (the header's
    /// value; <c>runs:</c> and the value for automation runs), begun <paramref name="age"/> ago. Returns its ledger request id.
    /// </summary>
    public async Task<string> LeaveUnfinishedAsync(Subscriber who, string storedKey, string body, TimeSpan age, string scope = CmpWaldurAdapter.Chat.IdempotencyStore.ChatScope) => await Tenants.QueryAsync(async db =>
    {
        var hash = ApiKeyFormat.Hash(who.Key);
        var keyId = await db.ApiKeys.Where(k => k.Hash == hash).Select(k => k.Id).SingleAsync();
        var started = DateTimeOffset.UtcNow - age;
        var id = Guid.NewGuid();
        db.IdempotentRequests.Add(new CmpWaldurAdapter.Chat.IdempotentRequest
        {
            Id = id,
            ApiKeyId = keyId,
            Scope = scope,
            Key = storedKey,
            RequestHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(body))),
            CreatedAt = started,
            ExpiresAt = started + TimeSpan.FromHours(24),
            LedgerRequestId = $"idem:{id:N}",
        });
        await db.SaveChangesAsync();
        return $"idem:{id:N}";
    });

    public async ValueTask DisposeAsync() => await Tenants.DisposeAsync();
}
