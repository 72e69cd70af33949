using System.Net;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>
/// A key of subscription A reaches only A: every upstream call it causes (Langflow runs, RAGFlow retrievals)
/// is recorded and checked for A's flow, session prefix, dataset and tenant key; revoked and regenerated
/// keys stop at once.
/// </summary>
public sealed class ChatIsolationTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_knowledge_base_without_documents_is_not_searched_and_its_messages_are_answered_and_charged_alike()
    {
        var empty = await _bed.SubscribeAsync(credits: 20, knowledge: false);
        var filled = await _bed.SubscribeAsync(credits: 20);

        foreach (var who in new[] { empty, filled })
        {
            using var http = _bed.Http(who.Key);
            using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"When do you open?"}"""));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // RAGFlow would embed the question before finding nothing: only the knowledge base with a document is asked.
        Assert.Equal([filled.Subscription.RagflowDatasetId!], Assert.Single(_bed.Tenants.Ragflow.Retrievals).DatasetIds);
        Assert.Equal(2, _bed.Tenants.Langflow.Runs.Count);
        var charged = await _bed.LedgerAsync(empty.Customer);
        Assert.Equal(1, charged.Charges);
        Assert.Equal(await _bed.LedgerAsync(filled.Customer), charged);
    }

    [Fact]
    public async Task Each_key_runs_only_its_own_flow_session_dataset_and_tenant_key()
    {
        var a = await _bed.SubscribeAsync(credits: 20);
        var b = await _bed.SubscribeAsync(credits: 20);
        Assert.NotEqual(a.Subscription.LangflowFlowId, b.Subscription.LangflowFlowId);
        Assert.NotEqual(a.Subscription.RagflowDatasetId, b.Subscription.RagflowDatasetId);
        using var httpA = _bed.Http(a.Key);
        using var httpB = _bed.Http(b.Key);

        foreach (var (http, stream) in new[] { (httpA, false), (httpB, false), (httpA, true), (httpB, true) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = ChatTestBed.Json($$"""{"message":"Hi","stream":{{(stream ? "true" : "false")}},"user":"same-conversation"}"""),
            };
            // B even names A's conversation and resource: the session is still B's.
            request.Headers.Add("X-Conversation-Id", http == httpB ? $"{a.Resource:N}-x" : "same-conversation");
            using var response = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        var credentials = _bed.Services.GetRequiredService<UpstreamCredentials>();
        var runs = _bed.Tenants.Langflow.Runs;
        Assert.Equal(4, runs.Count);
        foreach (var (who, runsOf) in new[] { (a, runs.Where((_, i) => i % 2 == 0)), (b, runs.Where((_, i) => i % 2 == 1)) })
        {
            var tenantKey = credentials.Unprotect(who.Workspace.LangflowApiKeyCipher!);
            Assert.All(runsOf, run =>
            {
                Assert.Equal(Guid.Parse(who.Subscription.LangflowFlowId!), run.FlowId);
                Assert.Equal(tenantKey, run.ApiKey);
                Assert.Equal(Guid.Parse(who.Workspace.LangflowUserId!), run.KeyOwner);
                Assert.StartsWith($"{who.Resource:N}:", run.SessionId);
                Assert.Equal(2, run.SessionId!.Split(':').Length);
            });
        }

        var retrievals = _bed.Tenants.Ragflow.Retrievals;
        Assert.Equal(4, retrievals.Count);
        Assert.Equal([a.Subscription.RagflowDatasetId!], retrievals[0].DatasetIds);
        Assert.Equal([b.Subscription.RagflowDatasetId!], retrievals[1].DatasetIds);
        Assert.Equal([a.Subscription.RagflowDatasetId!], retrievals[2].DatasetIds);
        Assert.Equal([b.Subscription.RagflowDatasetId!], retrievals[3].DatasetIds);
        Assert.Equal(new LedgerState(16, 0, 2, 4), await _bed.LedgerAsync(a.Customer));
        Assert.Equal(new LedgerState(16, 0, 2, 4), await _bed.LedgerAsync(b.Customer));
    }

    [Fact]
    public async Task A_key_sees_only_its_own_model_and_cannot_address_another_agent()
    {
        var a = await _bed.SubscribeAsync();
        using var http = _bed.Http(a.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"model":"research-agent","message":"Hi"}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(_bed.Tenants.Langflow.Runs);
    }

    [Fact]
    public async Task Revoked_and_regenerated_keys_are_refused_immediately()
    {
        var a = await _bed.SubscribeAsync();
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();
        var second = await keys.CreateAsync(a.Subscription.Id, ApiKeyKind.Secret, "second", CancellationToken.None);
        using var first = _bed.Http(a.Key);
        using var other = _bed.Http(second.Plaintext);
        Assert.Equal(HttpStatusCode.OK, (await first.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await other.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);

        var regenerated = await keys.RegenerateAsync(a.Subscription.Id, second.Key.Id, CancellationToken.None);
        Assert.Equal(HttpStatusCode.Unauthorized, (await other.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);
        using var renewed = _bed.Http(regenerated!.Plaintext);
        Assert.Equal(HttpStatusCode.OK, (await renewed.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);

        var firstId = (await keys.ListAsync(a.Subscription.Id, CancellationToken.None)).Single(k => k.Name == "chat tests").Id;
        Assert.True(await keys.RevokeAsync(a.Subscription.Id, firstId, CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, (await first.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await first.GetAsync("/v1/models")).StatusCode);
        Assert.Equal(3, _bed.Tenants.Langflow.Runs.Count);
    }

    [Fact]
    public async Task Changes_written_elsewhere_to_keys_and_subscriptions_apply_to_the_next_message()
    {
        // Another replica or the CLI writes straight to the database: no in-process notice reaches this adapter.
        var a = await _bed.SubscribeAsync();
        using var http = _bed.Http(a.Key);
        async Task<HttpStatusCode> ChatAsync() => (await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode;
        Task Write(Func<CmpWaldurAdapter.Persistence.AdapterDbContext, Task> change) => _bed.Tenants.QueryAsync(async db =>
        {
            await change(db);
            return 0;
        });

        Assert.Equal(HttpStatusCode.OK, await ChatAsync());
        await Write(async db =>
        {
            var subscription = await db.Subscriptions.SingleAsync(s => s.Id == a.Subscription.Id);
            subscription.Configuration = """{"agent_name":"Zed","tone":"formal","language":"en"}""";
            subscription.ConfigurationVersion++;
            await db.SaveChangesAsync();
        });
        Assert.Equal(HttpStatusCode.OK, await ChatAsync());
        Assert.Contains("Zed", _bed.Tenants.Langflow.Runs[^1].Tweaks.ToJsonString(), StringComparison.Ordinal);

        async Task PauseAsync(bool paused) => await Write(async db =>
        {
            (await db.Subscriptions.SingleAsync(s => s.Id == a.Subscription.Id)).Paused = paused;
            await db.SaveChangesAsync();
        });
        await PauseAsync(true);
        Assert.Equal(HttpStatusCode.Forbidden, await ChatAsync());
        await PauseAsync(false);
        Assert.Equal(HttpStatusCode.OK, await ChatAsync());

        await Write(db => db.ApiKeys.Where(k => k.SubscriptionId == a.Subscription.Id).ExecuteUpdateAsync(set => set.SetProperty(k => k.RevokedAt, DateTimeOffset.UtcNow)));
        Assert.Equal(HttpStatusCode.Unauthorized, await ChatAsync());
        Assert.Equal(3, _bed.Tenants.Langflow.Runs.Count);
        Assert.Equal(new LedgerState(94, 0, 3, 6), await _bed.LedgerAsync(a.Customer));
    }
}
