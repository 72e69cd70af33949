using CmpWaldurAdapter.Langflow;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Ragflow;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http;

namespace CmpWaldurAdapter.UnitTests.Observability;

/// <summary>Each upstream client's calls are counted under its own upstream, by the names the clients really get.</summary>
public sealed class UpstreamNamesTests
{
    [Fact]
    public void Every_upstream_client_is_labelled_with_its_own_upstream_and_no_other_client_is_counted()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = "http://127.0.0.1:9/",
            ["Waldur:Token"] = "token",
            ["Langflow:BaseUrl"] = "http://127.0.0.1:9/",
            ["Langflow:SuperuserUsername"] = "admin",
            ["Langflow:SuperuserPassword"] = "secret",
            ["Ragflow:BaseUrl"] = "http://127.0.0.1:9/",
            ["Ragflow:ApiKey"] = "ragflow-key",
        }).Build();
        var names = new NameRecorder();
        var services = new ServiceCollection().AddLogging().AddWaldurClient(configuration).AddLangflowClient(configuration).AddRagflowClient(configuration);
        services.AddHttpClient("handoff-webhooks");
        services.AddSingleton<IHttpMessageHandlerBuilderFilter>(names);
        using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IWaldurApi>();
        var waldur = names.Last;
        provider.GetRequiredService<ILangflowApi>();
        var langflow = names.Last;
        provider.GetRequiredService<IRagflowApi>();
        var ragflow = names.Last;
        provider.GetRequiredService<LangflowStreamingRuns>();
        var streamedRuns = names.Last;
        provider.GetRequiredService<IHttpClientFactory>().CreateClient("handoff-webhooks");

        Assert.Equal("waldur", UpstreamMetricsFilter.UpstreamOf(waldur));
        Assert.Equal("langflow", UpstreamMetricsFilter.UpstreamOf(langflow));
        Assert.Equal("ragflow", UpstreamMetricsFilter.UpstreamOf(ragflow));
        Assert.Equal("langflow", UpstreamMetricsFilter.UpstreamOf(streamedRuns));
        Assert.Null(UpstreamMetricsFilter.UpstreamOf(names.Last));
    }

    private sealed class NameRecorder : IHttpMessageHandlerBuilderFilter
    {
        public string? Last { get; private set; }

        public Action<HttpMessageHandlerBuilder> Configure(Action<HttpMessageHandlerBuilder> next) => builder =>
        {
            Last = builder.Name;
            next(builder);
        };
    }
}
