using CmpWaldurAdapter.Langflow.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;

namespace CmpWaldurAdapter.UnitTests.Langflow;

/// <summary>
/// Runs (plain and streamed) have no attempt timeout: connecting to Langflow must be bounded on its own, or a Langflow
/// that drops packets holds every run until Chat:RunTimeout. Read from the handlers the clients are really built with:
/// a black hole cannot be made deterministically on loopback (a closed port refuses at once).
/// </summary>
public sealed class LangflowConnectTimeoutTests
{
    [Fact]
    public void Both_langflow_clients_give_up_connecting_after_the_attempt_timeout()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Langflow:BaseUrl"] = "http://127.0.0.1:9/",
            ["Langflow:SuperuserUsername"] = "admin",
            ["Langflow:SuperuserPassword"] = "secret",
            ["Langflow:AttemptTimeout"] = "00:00:04",
        }).Build();
        var handlers = new PrimaryHandlerRecorder();
        var services = new ServiceCollection().AddLogging().AddLangflowClient(configuration);
        services.AddSingleton<IHttpMessageHandlerBuilderFilter>(handlers);
        using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<ILangflowApi>();
        var api = handlers.Last;
        provider.GetRequiredService<LangflowStreamingRuns>();
        var streams = handlers.Last;

        Assert.Equal(TimeSpan.FromSeconds(4), Assert.IsType<SocketsHttpHandler>(api).ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(4), Assert.IsType<SocketsHttpHandler>(streams).ConnectTimeout);
    }

    private sealed class PrimaryHandlerRecorder : IHttpMessageHandlerBuilderFilter
    {
        public HttpMessageHandler? Last { get; private set; }

        public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
        {
            next(builder);
            Last = builder.PrimaryHandler;
        };
    }
}
