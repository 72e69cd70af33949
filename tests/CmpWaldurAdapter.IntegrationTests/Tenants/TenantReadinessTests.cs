using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary><c>/status</c> with the agent runtime configured: Langflow's <c>/health_check</c> and RAGFlow's <c>healthz</c> count there, not in readiness.</summary>
public sealed class TenantReadinessTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        _server = await _bed.StartServerAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Status_includes_langflow_and_ragflow_and_names_no_details_and_readiness_does_not_wait_for_them()
    {
        using var client = _server.CreateClient();

        var ready = await client.GetAsync("/status");
        var body = JsonNode.Parse(await ready.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("healthy", body["checks"]!["langflow"]!.GetValue<string>());
        Assert.Equal("healthy", body["checks"]!["ragflow"]!.GetValue<string>());
        Assert.Contains(_bed.Langflow.Requests, r => r.Method == "GET" && r.Path == "/health_check");
        Assert.Contains(_bed.Ragflow.Requests, r => r.Method == "GET" && r.Path == "/api/v1/system/healthz");

        _bed.Langflow.Healthy = false;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
        var langflowDown = await client.GetAsync("/status");
        var failing = JsonNode.Parse(await langflowDown.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, langflowDown.StatusCode);
        Assert.Equal("unhealthy", failing["checks"]!["langflow"]!.GetValue<string>());
        Assert.Equal("healthy", failing["checks"]!["ragflow"]!.GetValue<string>());

        _bed.Langflow.Healthy = true;
        _bed.Ragflow.Healthy = false;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
        var ragflowDown = await client.GetAsync("/status");
        var text = await ragflowDown.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ragflowDown.StatusCode);
        Assert.Equal("unhealthy", JsonNode.Parse(text)!["checks"]!["ragflow"]!.GetValue<string>());
        Assert.DoesNotContain("Lost connection", text);
        Assert.DoesNotContain(RagflowFake.ApiKey, text);

        // Liveness never depends on them.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/healthz")).StatusCode);
    }
}
