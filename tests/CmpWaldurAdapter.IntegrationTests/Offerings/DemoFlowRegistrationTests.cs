using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Contracts;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Offerings;

/// <summary>
/// <c>offerings register</c> with Langflow configured: each offering's shared demo flow is published under the
/// dedicated demo user, its id stored for the try page, and the try page linked from the description; a second
/// run changes nothing in Waldur or Langflow.
/// </summary>
public sealed class DemoFlowRegistrationTests : IAsyncLifetime
{
    private readonly WaldurFake _waldur = new();
    private readonly LangflowFake _langflow = new();
    private readonly RagflowFake _ragflow = new();
    private readonly string _catalogue = Path.Combine(Path.GetTempPath(), "cmp-catalogue-" + Guid.NewGuid().ToString("N"));
    private TestDatabase _database = null!;
    private Dictionary<string, string?> _settings = null!;

    public async Task InitializeAsync()
    {
        CopyDirectory(UpstreamSpecs.PathOf("catalogue"), _catalogue);
        _database = await TestDatabase.CreateMigratedAsync(DatabaseProvider.Sqlite);
        _settings = AdapterTestHost.Settings(_waldur, _database).WithUpstreams(_langflow, _ragflow);
        _settings["Catalogue:Directory"] = _catalogue;
        _settings["Registration:ServiceProviderCustomerUuid"] = _waldur.ProviderCustomerUuid.ToString();
        _settings["Web:PublicBaseUrl"] = "https://agents.example.org/";
    }

    public async Task DisposeAsync()
    {
        try
        {
            _waldur.AssertRequestsConformToSpec();
            _langflow.AssertRequestsConformToSpec();
        }
        finally
        {
            _waldur.Dispose();
            _langflow.Dispose();
            _ragflow.Dispose();
            await _database.DisposeAsync();
            Directory.Delete(_catalogue, recursive: true);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await AdapterCli.RunAsync(args, new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(_settings);
            builder.Services.AddSingleton<ILogEventSink>(new CapturedLogs());
        }));
        return (exit, output.ToString(), error.ToString());
    }

    private async Task<List<DemoFlow>> StoredAsync()
    {
        using var host = AdapterHost();
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        return await db.DemoFlows.AsNoTracking().OrderBy(d => d.Slug).ToListAsync();
    }

    private Microsoft.Extensions.Hosting.IHost AdapterHost() =>
        CmpWaldurAdapter.Hosting.AdapterHost.BuildCommandHost(null, builder => builder.Configuration.AddInMemoryCollection(_settings));

    private int LangflowWrites => _langflow.Requests.Count(r => r.Method != "GET" && r.Path != "/api/v1/login");

    [Fact]
    public async Task Demo_flows_are_published_once_under_the_demo_user_and_linked_from_the_try_pages()
    {
        var first = await RunAsync("offerings", "register", "--all", "--output", "json");

        Assert.Equal(ExitCodes.Success, first.Exit);
        var results = JsonNode.Parse(first.Output)!["offerings"]!.AsArray().Select(r => r!.AsObject()).ToList();
        Assert.Equal(5, results.Count);
        var user = Assert.Single(_langflow.Users);
        Assert.Equal((DemoFlowPublisher.DemoUsername, true), (user.Username, user.IsActive));
        Assert.Equal(5, _langflow.Flows.Count);
        Assert.All(_langflow.Flows, f => Assert.Equal(user.Id, f.UserId));
        var stored = await StoredAsync();
        foreach (var result in results)
        {
            var slug = result["slug"]!.GetValue<string>();
            Assert.Contains("create demo flow", result["changes"]!.AsArray().Select(c => c!.GetValue<string>()));
            Assert.Equal($"https://agents.example.org/try/{slug}", result["tryUrl"]!.GetValue<string>());
            var flow = Assert.Single(_langflow.Flows, f => f.Name == DemoFlowPublisher.FlowName(slug));
            Assert.Equal(flow.Id.ToString(), result["demoFlowId"]!.GetValue<string>());
            Assert.Equal(flow.Id.ToString(), Assert.Single(stored, d => d.Slug == slug).LangflowFlowId);
            var offering = _waldur.RegisteredOfferings.Single(o => o["backend_id"]!.GetValue<string>() == slug);
            Assert.Contains($"https://agents.example.org/try/{slug}", offering["full_description"]!.GetValue<string>());
        }

        // The demo flow is the catalogue's demo file, not the subscription template.
        var demo = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(_catalogue, "flows", "customer-support-agent.demo.json")))!;
        var published = _langflow.Flow(_langflow.Flows.Single(f => f.Name == DemoFlowPublisher.FlowName("customer-support-agent")).Id);
        Assert.True(JsonNode.DeepEquals(demo["data"], published["data"]));

        var langflowWrites = LangflowWrites;
        var second = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, second.Exit);
        Assert.Contains("Nothing to change: Waldur already matches the catalogue.", second.Output);
        Assert.Equal(langflowWrites, LangflowWrites);
        Assert.Equal(5, _langflow.Flows.Count);

        var third = await RunAsync("offerings", "register", "--all", "--output", "json");
        Assert.False(JsonNode.Parse(third.Output)!["changed"]!.GetValue<bool>());
        Assert.True(JsonNode.Parse(first.Output)!["changed"]!.GetValue<bool>());
    }

    [Fact]
    public async Task A_changed_demo_file_updates_only_its_flow_and_a_deleted_flow_is_published_again()
    {
        await RunAsync("offerings", "register", "--all");
        var file = Path.Combine(_catalogue, "flows", "research-agent.demo.json");
        var demo = JsonNode.Parse(await File.ReadAllTextAsync(file))!;
        demo["data"]!["viewport"] = new JsonObject { ["x"] = 10, ["y"] = 20, ["zoom"] = 1 };
        await File.WriteAllTextAsync(file, demo.ToJsonString());
        var before = _langflow.Flows.Single(f => f.Name == DemoFlowPublisher.FlowName("research-agent")).Id;

        var dry = await RunAsync("offerings", "register", "--all", "--dry-run", "--output", "json");
        var changed = await RunAsync("offerings", "register", "--all", "--output", "json");

        var dryChanges = JsonNode.Parse(dry.Output)!["offerings"]!.AsArray().ToDictionary(r => r!["slug"]!.GetValue<string>(), r => r!["changes"]!.AsArray().Select(c => c!.GetValue<string>()).ToList());
        Assert.Equal(["update demo flow"], dryChanges["research-agent"]);
        Assert.Empty(dryChanges["code-assistant"]);
        var changes = JsonNode.Parse(changed.Output)!["offerings"]!.AsArray().ToDictionary(r => r!["slug"]!.GetValue<string>(), r => r!["changes"]!.AsArray().Select(c => c!.GetValue<string>()).ToList());
        Assert.Equal(["update demo flow"], changes["research-agent"]);
        Assert.All(changes.Where(c => c.Key != "research-agent"), c => Assert.Empty(c.Value));
        Assert.Equal(10, _langflow.Flow(before)["data"]!["viewport"]!["x"]!.GetValue<int>());

        // Someone deleted a demo flow in Langflow: the next run publishes it again and stores the new id.
        using (var host = AdapterHost())
        {
            var runtime = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContext().DemoRuntimes.AsNoTracking().SingleAsync();
            var key = Langflow.Api.LangflowCredential.FromApiKey(host.Services.GetRequiredService<Provisioning.UpstreamCredentials>().Unprotect(runtime.ApiKeyCipher!));
            await host.Services.GetRequiredService<Langflow.Api.ILangflowApi>().DeleteFlowAsync(before, key, CancellationToken.None);
        }

        var again = await RunAsync("offerings", "register", "--file", Path.Combine(_catalogue, "research-agent.yaml"), "--output", "json");

        var result = JsonNode.Parse(again.Output)!["offerings"]!.AsArray().Single()!;
        Assert.Equal(["create demo flow"], result["changes"]!.AsArray().Select(c => c!.GetValue<string>()));
        var recreated = _langflow.Flows.Single(f => f.Name == DemoFlowPublisher.FlowName("research-agent")).Id;
        Assert.NotEqual(before, recreated);
        Assert.Equal(recreated.ToString(), (await StoredAsync()).Single(d => d.Slug == "research-agent").LangflowFlowId);
    }

    [Fact]
    public async Task Try_mode_runs_the_published_demo_flow_with_the_demo_users_key()
    {
        await RunAsync("offerings", "register", "--all");
        using var host = AdapterHost();
        var offering = host.Services.GetRequiredService<CmpWaldurAdapter.Catalogue.OfferingCatalogue>().Find("customer-support-agent")!;
        var demoAgent = host.Services.GetRequiredService<CmpWaldurAdapter.Web.IDemoAgent>();

        var answer = await demoAgent.AnswerAsync(offering, "demo:customer-support-agent:visitor-1", "What can you do?", CancellationToken.None);

        Assert.Equal("echo: What can you do?", answer);
        var run = Assert.Single(_langflow.Runs);
        Assert.Equal(_langflow.Flows.Single(f => f.Name == DemoFlowPublisher.FlowName("customer-support-agent")).Id, run.FlowId);
        Assert.Equal(Assert.Single(_langflow.Users).Id, run.KeyOwner);
        Assert.Equal("demo:customer-support-agent:visitor-1", run.SessionId);
        Assert.Empty(run.Tweaks);
    }

    [Fact]
    public async Task Try_mode_remembers_a_visitors_earlier_turns_and_only_that_visitors()
    {
        await RunAsync("offerings", "register", "--all");
        using var host = AdapterHost();
        var offering = host.Services.GetRequiredService<CmpWaldurAdapter.Catalogue.OfferingCatalogue>().Find("customer-support-agent")!;
        var demoAgent = host.Services.GetRequiredService<CmpWaldurAdapter.Web.IDemoAgent>();

        await demoAgent.AnswerAsync(offering, "demo:customer-support-agent:visitor-1", "My parcel number is 4711.", CancellationToken.None);
        await demoAgent.AnswerAsync(offering, "demo:customer-support-agent:visitor-1", "and where is it now?", CancellationToken.None);
        await demoAgent.AnswerAsync(offering, "demo:customer-support-agent:visitor-2", "and where is it now?", CancellationToken.None);

        // The published demo flow has the template's Message History: the session's stored turns reach the prompt.
        Assert.Equal(["", "User: My parcel number is 4711.\nAI: echo: My parcel number is 4711.", ""], _langflow.RunHistories.Select(r => r.History));
    }

    [Fact]
    public async Task Try_mode_without_published_demo_flows_is_unavailable_not_broken()
    {
        Assert.Equal(ExitCodes.Success, (await RunAsync("db", "migrate")).Exit);
        using var host = AdapterHost();
        var offering = host.Services.GetRequiredService<CmpWaldurAdapter.Catalogue.OfferingCatalogue>().Find("customer-support-agent")!;

        var refusal = await Assert.ThrowsAsync<CmpWaldurAdapter.Chat.AgentUnavailableException>(() =>
            host.Services.GetRequiredService<CmpWaldurAdapter.Web.IDemoAgent>().AnswerAsync(offering, "demo:x:y", "hi", CancellationToken.None));

        Assert.True(refusal.Transient);
        Assert.Empty(_langflow.Runs);
    }

    private int WaldurWrites => _waldur.Requests.Count(r => r.Method != "GET");

    [Fact]
    public async Task A_file_whose_demo_flow_is_missing_is_refused_before_waldur_is_asked_anything()
    {
        File.Delete(Path.Combine(_catalogue, "flows", "code-assistant.demo.json"));

        var (exit, _, error) = await RunAsync("offerings", "register", "--file", Path.Combine(_catalogue, "code-assistant.yaml"));

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("demo_flow: 'flows/code-assistant.demo.json'", error);
        Assert.Contains("Nothing was changed in Waldur.", error);
        Assert.Equal(0, WaldurWrites);
        Assert.Empty(_waldur.RegisteredOfferings);
    }

    [Fact]
    public async Task A_file_outside_the_catalogue_folder_is_refused_before_waldur_is_asked_anything()
    {
        // Its flows sit beside it, not in the catalogue folder, where serve and the demo flow publisher read them.
        var elsewhere = Path.Combine(Path.GetTempPath(), "cmp-elsewhere-" + Guid.NewGuid().ToString("N"));
        CopyDirectory(UpstreamSpecs.PathOf("catalogue"), elsewhere);
        var file = Path.Combine(elsewhere, "new-agent.yaml");
        await File.WriteAllTextAsync(file, (await File.ReadAllTextAsync(Path.Combine(elsewhere, "code-assistant.yaml")))
            .Replace("code-assistant", "new-agent", StringComparison.Ordinal));
        File.Move(Path.Combine(elsewhere, "flows", "code-assistant.json"), Path.Combine(elsewhere, "flows", "new-agent.json"));
        File.Move(Path.Combine(elsewhere, "flows", "code-assistant.demo.json"), Path.Combine(elsewhere, "flows", "new-agent.demo.json"));
        try
        {
            var (exit, _, error) = await RunAsync("offerings", "register", "--file", file);

            Assert.Equal(ExitCodes.Error, exit);
            Assert.Contains($"{file}: not in the catalogue folder", error);
            Assert.Equal(0, WaldurWrites);
            Assert.Empty(_waldur.RegisteredOfferings);
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }
    }

    [Fact]
    public async Task A_demo_flow_that_cannot_be_read_stops_registration_before_any_offering_is_created_or_activated()
    {
        var broken = Path.Combine(_catalogue, "flows", "topic-assistant.demo.json");
        await File.WriteAllTextAsync(broken, "not json");

        var (exit, _, error) = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains(broken, error);
        Assert.Contains("Nothing was changed in Waldur.", error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Equal(0, WaldurWrites);
        Assert.Equal(0, LangflowWrites);
        Assert.Empty(_waldur.RegisteredOfferings);
    }
}
