using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

public sealed class HealthTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        _server = await _bed.StartServerAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Liveness_answers_without_touching_dependencies()
    {
        _bed.Waldur.Break("GET", ".*", 503);
        using var client = _server.CreateClient();

        var response = await client.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("healthy", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Readiness_needs_the_database_and_status_shows_waldur_too()
    {
        using var client = _server.CreateClient();

        var ready = await client.GetAsync("/readyz");
        var status = await client.GetAsync("/status");
        var body = JsonNode.Parse(await status.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(["database", "schema"], JsonNode.Parse(await ready.Content.ReadAsStringAsync())!["checks"]!.AsObject().Select(c => c.Key));
        Assert.Equal(HttpStatusCode.OK, status.StatusCode);
        Assert.Equal("healthy", body["checks"]!["database"]!.GetValue<string>());
        Assert.Equal("healthy", body["checks"]!["waldur"]!.GetValue<string>());
        Assert.Equal("healthy", body["checks"]!["events"]!.GetValue<string>()); // events off: orders are polled for
        Assert.Contains(_bed.Waldur.Requests, r => r.Path == "/api/users/me/" && r.Query!["field"].Contains("uuid"));

        // Waldur is every replica's: its outage leaves them all in the Service, and monitoring sees it.
        _bed.Waldur.Break("GET", "/api/users/me/", 503);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
        var degraded = await client.GetAsync("/status");
        var failing = JsonNode.Parse(await degraded.Content.ReadAsStringAsync())!;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, degraded.StatusCode);
        Assert.Equal("unhealthy", failing["checks"]!["waldur"]!.GetValue<string>());
        Assert.Equal("healthy", failing["checks"]!["database"]!.GetValue<string>());
        Assert.DoesNotContain(WaldurFake.Token, failing.ToJsonString());
    }

    [Fact]
    public async Task Status_shows_event_queues_that_cannot_be_listened_to_while_readiness_stays()
    {
        await using var bed = await OrderTestBed.CreateAsync();
        // Events on, but the broker's address is wrong: orders would come only with the fallback poll.
        bed.Settings["Events:Enabled"] = "true";
        bed.Settings["Events:WebSocketUrl"] = $"ws://127.0.0.1:{LoopbackPorts.Free()}/ws";
        var server = await bed.StartServerAsync();
        using var client = server.CreateClient();

        var status = await client.GetAsync("/status");
        var body = JsonNode.Parse(await status.Content.ReadAsStringAsync())!;

        Assert.Equal(HttpStatusCode.ServiceUnavailable, status.StatusCode);
        Assert.Equal("unhealthy", body["checks"]!["events"]!.GetValue<string>());
        Assert.Equal("healthy", body["checks"]!["waldur"]!.GetValue<string>());
        Assert.Equal("0 of 2 Waldur event queue(s) listened to; orders of the others are found only by the fallback poll.", body["reasons"]!["events"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/readyz")).StatusCode);
    }
}
