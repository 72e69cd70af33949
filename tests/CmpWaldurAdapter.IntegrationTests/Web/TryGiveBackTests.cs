using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using CmpWaldurAdapter.Testing.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// A demo message the agent failed to answer, or whose visitor left before the answer, is given back, on the real
/// clock: a visitor's first message starts its counters' windows at the instant it was counted, and the give-back
/// must match that instant.
/// </summary>
public sealed class TryGiveBackTests : IAsyncLifetime
{
    private readonly Channel<string> _handled = Channel.CreateUnbounded<string>();
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync();
        await _bed.StartAsync(services => services.AddSingleton<IStartupFilter>(new Handled(_handled.Writer)));
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

    [Fact]
    public async Task A_demo_message_whose_visitor_left_before_the_answer_is_not_counted()
    {
        using var visitor = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = _bed.Url };
        await visitor.GetStringAsync("/try/research-agent"); // the visitor cookie
        _bed.Agent.DemoGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var leaving = new CancellationTokenSource();

        var left = visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hello" }, leaving.Token);
        await _bed.Agent.DemoWaiting.Task;
        await leaving.CancelAsync(); // the tab is closed or reloaded while the demo agent thinks
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => left);
        Assert.Equal("/try/research-agent/messages", await _handled.Reader.ReadAsync());

        _bed.Agent.DemoGate = null;
        var answered = await visitor.PostAsJsonAsync("/try/research-agent/messages", new { message = "hello again" });
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal(4, JsonNode.Parse(await answered.Content.ReadAsStringAsync())!["remaining"]!.GetValue<int>());
    }

    /// <summary>Reports each try message request once the server has finished with it (also when its client left).</summary>
    private sealed class Handled(ChannelWriter<string> handled) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (http, then) =>
            {
                try
                {
                    await then(http);
                }
                finally
                {
                    if (http.Request.Method == HttpMethods.Post && http.Request.Path.StartsWithSegments("/try"))
                    {
                        handled.TryWrite(http.Request.Path.Value!);
                    }
                }
            });
            next(app);
        };
    }
}
