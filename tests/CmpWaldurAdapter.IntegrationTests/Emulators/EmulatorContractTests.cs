using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Testing.Contracts;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Refit;

namespace CmpWaldurAdapter.IntegrationTests.Emulators;

/// <summary>
/// The sandbox's emulators driven by the real adapter through a whole subscription (registration, Create,
/// documents, retrieval, runs, Update, Terminate): every request and every response must fit the pinned specs,
/// checked by the same contract helper the WireMock tests use.
/// </summary>
public sealed class EmulatorContractTests : IAsyncLifetime
{
    private readonly WaldurEmulator _waldur = new();
    private readonly LangflowEmulator _langflow = new();
    private readonly RagflowEmulator _ragflow = new();
    private TestDatabase _database = null!;
    private IHost _host = null!;
    private Dictionary<string, string?> _settings = null!;

    public async Task InitializeAsync()
    {
        await _waldur.StartAsync();
        await _langflow.StartAsync();
        await _ragflow.StartAsync();
        _database = await TestDatabase.CreateMigratedAsync(DatabaseProvider.Sqlite);
        _settings = new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = _waldur.Url.ToString(),
            ["Waldur:Token"] = WaldurEmulator.Token,
            ["Langflow:BaseUrl"] = _langflow.Url.ToString(),
            ["Langflow:SuperuserUsername"] = LangflowEmulator.SuperuserUsername,
            ["Langflow:SuperuserPassword"] = LangflowEmulator.SuperuserPassword,
            ["Ragflow:BaseUrl"] = _ragflow.Url.ToString(),
            ["Ragflow:ApiKey"] = RagflowEmulator.ApiKey,
            ["Registration:ServiceProviderCustomerUuid"] = _waldur.ProviderCustomerUuid.ToString(),
            ["Serilog:MinimumLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in _database.Settings)
        {
            _settings[key] = value;
        }

        // Registration first: the served offerings are the ones Waldur now holds.
        using (var registration = await AdapterTestHost.StartServicesAsync(_settings))
        {
            var entries = registration.Services.GetRequiredService<OfferingCatalogue>().Entries.OrderBy(e => e.Slug, StringComparer.Ordinal).ToList();
            var registered = await registration.Services.GetRequiredService<OfferingRegistrar>().RegisterAsync(entries, dryRun: false, CancellationToken.None);
            for (var i = 0; i < registered.Count; i++)
            {
                _settings[$"Offerings:{i}:Uuid"] = registered[i].Uuid.ToString();
                _settings[$"Offerings:{i}:Slug"] = registered[i].Slug;
            }

            await registration.StopAsync();
        }

        _host = await AdapterTestHost.StartServicesAsync(_settings);
    }

    public async Task DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        await _waldur.DisposeAsync();
        await _langflow.DisposeAsync();
        await _ragflow.DisposeAsync();
        await _database.DisposeAsync();
    }

    private Guid OfferingUuid(string slug)
    {
        var index = _settings.Single(s => s.Key.EndsWith(":Slug", StringComparison.Ordinal) && s.Value == slug).Key.Split(':')[1];
        return Guid.Parse(_settings[$"Offerings:{index}:Uuid"]!);
    }

    private async Task<OrderOutcome> ProcessAsync(Guid order)
    {
        var processor = _host.Services.GetRequiredService<OrderProcessor>();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await processor.ProcessAsync(order, CancellationToken.None);
            }
            catch (OrderDeferredException) when (attempt < 30)
            {
            }
        }
    }

    [Fact]
    public async Task A_whole_subscription_against_the_emulators_conforms_to_the_pinned_specs()
    {
        var offering = OfferingUuid("customer-support-agent");
        var create = _waldur.PlaceCreateOrder(offering, new JsonObject { ["name"] = "agent", ["agent_name"] = "Sandy", ["tone"] = "friendly" });
        Assert.Equal(OrderOutcome.Completed, await ProcessAsync(create));
        Assert.Equal("done", _waldur.OrderState(create));
        var resource = _waldur.ResourceOf(create);
        await using var db = await _host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        var subscription = await db.Subscriptions.AsNoTracking().SingleAsync(s => s.ResourceUuid == resource);
        var workspace = await db.Workspaces.AsNoTracking().SingleAsync(w => w.Id == subscription.WorkspaceId);

        // Documents: parsed into paragraph chunks, retrieved by keyword overlap.
        var ragflow = _host.Services.GetRequiredService<IRagflowApi>();
        var text = "Opening hours: nine to five on weekdays.\n\nRefunds: a purchase is refunded within 30 days.\n\nShipping takes three days.";
        var uploaded = await ragflow.UploadDocumentsAsync(subscription.RagflowDatasetId!, [new StreamPart(new MemoryStream(Encoding.UTF8.GetBytes(text)), "handbook.txt", "text/plain")], CancellationToken.None);
        var document = Assert.Single(uploaded.Data!);
        await ragflow.ParseDocumentsAsync(subscription.RagflowDatasetId!, new ParseRequest { Document_ids = [document.Id] }, CancellationToken.None);
        var listed = await ragflow.ListDocumentsAsync(subscription.RagflowDatasetId!, 1, 30, CancellationToken.None);
        Assert.Equal(3, Assert.Single(listed.Data!.Docs!).Chunk_count);
        var retrieved = await ragflow.RetrieveAsync(new RetrievalRequest { Question = "How do refunds work?", Dataset_ids = [subscription.RagflowDatasetId!] }, CancellationToken.None);
        var best = Assert.Single(retrieved.Data!.Chunks!);
        Assert.Equal("Refunds: a purchase is refunded within 30 days.", best.Content);

        // Runs: the answer comes from the retrieved passage the run's tweaks carry; the stream ends with the result.
        var tenantKey = _host.Services.GetRequiredService<UpstreamCredentials>().Unprotect(workspace.LangflowApiKeyCipher!);
        var key = LangflowCredential.FromApiKey(tenantKey);
        var run = await _host.Services.GetRequiredService<ILangflowApi>().RunAsync(Guid.Parse(subscription.LangflowFlowId!), new SimplifiedAPIRequest
        {
            Input_value = "How do refunds work?",
            Session_id = $"{resource}:conversation",
            Tweaks = new Tweaks { ["Prompt-cmp01"] = new Dictionary<string, object> { ["context"] = best.Content! } },
        }, key, CancellationToken.None);
        Assert.Equal("Sandy: Refunds: a purchase is refunded within 30 days.", run.Text());

        using var client = new HttpClient { BaseAddress = _langflow.Url };
        using var streamRequest = new HttpRequestMessage(HttpMethod.Post, $"api/v1/run/{subscription.LangflowFlowId}?stream=true")
        {
            Content = new StringContent("""{"input_value": "Hello", "session_id": "s1"}""", Encoding.UTF8, "application/json"),
        };
        streamRequest.Headers.Add("x-api-key", tenantKey);
        using var streamed = await client.SendAsync(streamRequest, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", streamed.Content.Headers.ContentType?.MediaType);
        var events = (await streamed.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => JsonNode.Parse(e)!).ToList();
        Assert.Equal(["add_message", "add_message"], events.Take(2).Select(e => e["event"]!.GetValue<string>()));
        Assert.Equal("end", events[^1]["event"]!.GetValue<string>());
        var tokens = string.Concat(events.Where(e => e["event"]!.GetValue<string>() == "token").Select(e => e["data"]!["chunk"]!.GetValue<string>()));
        Assert.Equal("Sandy: I have no documents about \"Hello\" yet.", tokens);
        Assert.Equal(tokens, events[^1]["data"]!["result"]!["outputs"]![0]!["outputs"]![0]!["results"]!["message"]!["text"]!.GetValue<string>());

        // Update and Terminate.
        var update = _waldur.PlaceOrder("Update", offering, resource, new JsonObject { ["agent_name"] = "Sandra" });
        Assert.Equal(OrderOutcome.Completed, await ProcessAsync(update));
        var terminate = _waldur.PlaceOrder("Terminate", offering, resource);
        Assert.Equal(OrderOutcome.Completed, await ProcessAsync(terminate));
        Assert.DoesNotContain(_langflow.Flows, f => f.Name.Contains($"cmp-{resource:N}", StringComparison.Ordinal));
        Assert.Equal(5, _langflow.Flows.Count); // the demo flows registration published stay
        Assert.Empty(_ragflow.Datasets);

        Assert.Empty(_waldur.ContractViolations(UpstreamSpecs.Waldur.WithAuthEnforced()));
        Assert.Empty(_langflow.ContractViolations(UpstreamSpecs.Langflow.WithAuthEnforced()));
        Assert.Empty(_ragflow.ContractViolations(UpstreamSpecs.Ragflow.WithAuthEnforced()));
    }

    [Fact]
    public async Task The_checker_catches_an_emulator_answer_outside_the_spec()
    {
        // A RAGFlow request the spec forbids (an unknown field) is a violation, so an empty list above means something.
        using var client = new HttpClient { BaseAddress = _ragflow.Url };
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/datasets") { Content = new StringContent("""{"name": "x", "colour": "red"}""", Encoding.UTF8, "application/json") };
        request.Headers.Add("Authorization", "Bearer " + RagflowEmulator.ApiKey);
        await client.SendAsync(request);

        Assert.Contains(_ragflow.ContractViolations(UpstreamSpecs.Ragflow.WithAuthEnforced()), v => v.Contains("colour", StringComparison.Ordinal));

        // And answers are held to the declared response: a wrongly typed field, an undeclared status.
        var list = new HttpRequestRecord("GET", "/api/v1/datasets?page=1&page_size=30");
        Assert.Empty(UpstreamSpecs.Ragflow.ValidateResponse(list, 200, "application/json", """{"code": 0, "data": []}"""));
        Assert.NotEmpty(UpstreamSpecs.Ragflow.ValidateResponse(list, 200, "application/json", """{"code": "zero", "data": []}"""));
        Assert.NotEmpty(UpstreamSpecs.Waldur.ValidateResponse(new HttpRequestRecord("GET", $"/api/marketplace-orders/{Guid.NewGuid()}/"), 418, "application/json", "{}"));
    }
}
