using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.UnitTests.Hosting;

/// <summary>
/// How long a stopping server waits for in-flight requests and jobs: .NET's own 30 s would cut an agent run
/// (Chat:RunTimeout, 2 min) half-way when Kubernetes rolls a pod, so Hosting:ShutdownTimeout sets it.
/// </summary>
public sealed class ShutdownTimeoutTests
{
    private static readonly Dictionary<string, string?> Minimum = new(StringComparer.Ordinal)
    {
        ["Waldur:BaseUrl"] = "https://waldur.example.org/",
        ["Waldur:Token"] = "waldur-token",
        ["Database:ConnectionString"] = "Data Source=:memory:",
    };

    [Fact]
    public void Hosting_ShutdownTimeout_reaches_the_servers_HostOptions()
    {
        var settings = new Dictionary<string, string?>(Minimum, StringComparer.Ordinal) { ["Hosting:ShutdownTimeout"] = "00:03:07" };

        Assert.Equal(TimeSpan.FromSeconds(187), ServerShutdownTimeout(settings));
    }

    [Fact]
    public void By_default_a_stopping_server_outlives_an_agent_run()
    {
        var timeout = ServerShutdownTimeout(Minimum);

        Assert.True(timeout > new ChatOptions().RunTimeout, $"the default shutdown timeout {timeout} must outlast Chat:RunTimeout {new ChatOptions().RunTimeout}");
        Assert.Equal(TimeSpan.FromSeconds(135), timeout); // the chart's check (grace > shutdown + preStop) counts on this
    }

    private static TimeSpan ServerShutdownTimeout(Dictionary<string, string?> settings)
    {
        // Built, not started: the host's own HostOptions setup (shutdownTimeoutSeconds) is in place as in production.
        var app = AdapterHost.BuildServer([], null, builder => builder.Configuration.AddInMemoryCollection(settings));
        try
        {
            return app.Services.GetRequiredService<IOptions<HostOptions>>().Value.ShutdownTimeout;
        }
        finally
        {
            ((IDisposable)app).Dispose();
        }
    }
}
