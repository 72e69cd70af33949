using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// The whole server against WireMock fakes of RAGFlow, Notion and Confluence, on a fresh database, with one
/// funded subscription whose dataset exists in the RAGFlow fake and a secret key for it.
/// Polls run when a test calls <see cref="PollAsync"/>, unless it sets a short <c>Knowledge:PollInterval</c>.
/// </summary>
internal sealed class KnowledgeTestBed : IAsyncDisposable
{
    private KnowledgeTestBed(CreditTestBed credits)
    {
        Credits = credits;
        var settings = credits.Settings;
        settings["Ragflow:BaseUrl"] = Ragflow.Url.ToString();
        settings["Ragflow:ApiKey"] = RagflowFake.ApiKey;
        settings["Ragflow:RetryAttempts"] = "1";
        settings["Ragflow:RetryDelay"] = "00:00:00.020";
        settings["Ragflow:AttemptTimeout"] = "00:00:05";
        settings["Knowledge:PollInterval"] = "01:00:00";
        settings["Knowledge:Notion:BaseUrl"] = Notion.Url.ToString();
        settings["Knowledge:Notion:RetryAttempts"] = "1";
        settings["Knowledge:Notion:RetryDelay"] = "00:00:00.010";
        settings["Knowledge:Confluence:RetryAttempts"] = "1";
        settings["Knowledge:Confluence:RetryDelay"] = "00:00:00.010";
        settings["Knowledge:Url:RetryDelay"] = "00:00:00.010";
        settings["Knowledge:Url:Timeout"] = "00:00:05";
        settings["Knowledge:Url:AllowLoopback"] = "true";
    }

    public CreditTestBed Credits { get; }

    public RagflowFake Ragflow { get; } = new();

    public NotionFake Notion { get; } = new();

    public ConfluenceFake Confluence { get; } = new();

    public Dictionary<string, string?> Settings => Credits.Settings;

    public RunningAdapter Server { get; private set; } = null!;

    public Subscription Subscription { get; private set; } = null!;

    public string DatasetId { get; private set; } = null!;

    public string Key { get; private set; } = null!;

    public static async Task<KnowledgeTestBed> CreateAsync(DatabaseProvider provider, DateTimeOffset? now = null) =>
        new(await CreditTestBed.CreateAsync(provider, now));

    /// <summary>Starts the server and seeds a subscription with its dataset, a key and <paramref name="credits"/>.</summary>
    public async Task StartAsync(long credits = 100)
    {
        Server = await Credits.StartServerAsync();
        (Subscription, DatasetId, Key) = await AddSubscriptionAsync(credits);
    }

    public async Task<(Subscription Subscription, string DatasetId, string Key)> AddSubscriptionAsync(long credits)
    {
        var subscription = await Credits.AddSubscriptionAsync();
        var dataset = Ragflow.AddDataset($"cmp-{subscription.ResourceUuid:N}");
        await Credits.QueryAsync(async db =>
        {
            (await db.Subscriptions.FindAsync(subscription.Id))!.RagflowDatasetId = dataset;
            return await db.SaveChangesAsync();
        });
        if (credits > 0)
        {
            await Credits.Ledger.GrantAsync(subscription.CustomerId, credits, "test funding");
        }

        var key = (await Server.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "server", CancellationToken.None)).Plaintext;
        return (subscription, dataset, key);
    }

    /// <summary>Stops the server and starts a new one (with any <paramref name="services"/> changed) on the same database (and fakes): a restart.</summary>
    public async Task RestartAsync(Action<IServiceCollection>? services = null)
    {
        await Server.DisposeAsync();
        Server = await Credits.StartServerAsync(services);
    }

    public Task GrantAsync(long credits) => Credits.Ledger.GrantAsync(Subscription.CustomerId, credits, "more test funding");

    public Task<int> PollAsync() => Server.Services.GetRequiredService<ParseMonitor>().PollAsync(CancellationToken.None);

    public async Task<long> AvailableAsync() => (await Credits.Ledger.BalanceAsync(Subscription.CustomerId)).Available;

    public Task<List<KnowledgeDocument>> RowsAsync() =>
        Credits.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == Subscription.Id).ToListAsync());

    /// <summary>Ledger charges of the subscription for knowledge-base documents (holds given back are not charges).</summary>
    public Task<int> RagChargesAsync() =>
        Credits.QueryAsync(db => db.LedgerEntries.CountAsync(e => e.SubscriptionId == Subscription.Id && e.Component == "rag_credits" && e.Kind == LedgerEntryKind.Charge));

    public async Task<(HttpStatusCode Status, JsonObject Body)> UploadAsync(params (string Name, string Content)[] files) =>
        await UploadAsync(Key, files);

    public async Task<(HttpStatusCode Status, JsonObject Body)> UploadAsync(string key, params (string Name, string Content)[] files)
    {
        using var form = new MultipartFormDataContent();
        foreach (var (name, content) in files)
        {
            var part = new ByteArrayContent(Encoding.UTF8.GetBytes(content));
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part, "file", name);
        }

        return await SendAsync(HttpMethod.Post, "/v1/knowledge/documents", form, key);
    }

    public Task<(HttpStatusCode Status, JsonObject Body)> PostJsonAsync(string path, JsonObject body, string? key = null) =>
        SendAsync(HttpMethod.Post, path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), key ?? Key);

    public Task<(HttpStatusCode Status, JsonObject Body)> GetAsync(string path, string? key = null) => SendAsync(HttpMethod.Get, path, null, key ?? Key);

    public Task<(HttpStatusCode Status, JsonObject Body)> DeleteAsync(string path, string? key = null) => SendAsync(HttpMethod.Delete, path, null, key ?? Key);

    public async Task<JsonArray> DocumentsAsync(string? key = null)
    {
        var (status, body) = await GetAsync("/v1/knowledge/documents", key);
        Assert.Equal(HttpStatusCode.OK, status);
        return body["data"]!.AsArray();
    }

    public Task<(HttpStatusCode Status, JsonObject Body)> SendAsync(HttpMethod method, string path, HttpContent? content, string? key) =>
        SendAsync(Server, method, path, content, key);

    /// <summary>Sends to <paramref name="server"/>: this bed's server or another replica on the same database.</summary>
    public static async Task<(HttpStatusCode Status, JsonObject Body)> SendAsync(RunningAdapter server, HttpMethod method, string path, HttpContent? content, string? key)
    {
        using var client = server.CreateClient();
        using var request = new HttpRequestMessage(method, path) { Content = content };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? [] : JsonNode.Parse(text)!.AsObject());
    }

    public static void AssertError(JsonObject body, string code)
    {
        var error = body["error"]!.AsObject();
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Credits.DisposeAsync();
            Ragflow.AssertRequestsConformToSpec();
        }
        finally
        {
            Ragflow.Dispose();
            Notion.Dispose();
            Confluence.Dispose();
        }
    }
}
