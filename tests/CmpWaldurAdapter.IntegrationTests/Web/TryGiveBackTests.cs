using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Web;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// A demo message the agent failed to answer is given back, on the real clock: a visitor's first message starts
/// its counters' windows at the instant it was counted, and the give-back must match that instant.
/// </summary>
public sealed class TryGiveBackTests : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_first_demo_message_the_agent_failed_to_answer_is_not_counted()
    {
        using var visitor = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = _bed.Url };
        _bed.Agent.DemoFails = true;

        var failed = await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hello" });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failed.StatusCode);
        Assert.Contains("not counted", await failed.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        _bed.Agent.DemoFails = false;
        var answered = await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hello again" });
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal(4, JsonNode.Parse(await answered.Content.ReadAsStringAsync())!["remaining"]!.GetValue<int>());
    }
}
