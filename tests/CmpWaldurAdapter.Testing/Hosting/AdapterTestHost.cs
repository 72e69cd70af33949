using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Usage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Serilog.Core;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// Runs the adapter in-process exactly as <c>cmp-adapter</c> composes it, against fakes and a test
/// database, with timings shortened so retry and backoff tests finish in milliseconds.
/// </summary>
public static class AdapterTestHost
{
    /// <summary>Configuration every test starts from; tests add or override keys.</summary>
    public static Dictionary<string, string?> Settings(WaldurEmulator waldur, TestDatabase database, params Guid[] offerings)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = waldur.Url.ToString(),
            ["Waldur:Token"] = WaldurEmulator.Token,
            ["Waldur:RetryAttempts"] = "2",
            ["Waldur:RetryDelay"] = "00:00:00.020",
            ["Waldur:AttemptTimeout"] = "00:00:02",
            ["Orders:InboxCheckInterval"] = "00:00:00.100",
            ["Orders:RetryInitial"] = "00:00:00.050",
            ["Orders:RetryMaximum"] = "00:00:00.400",
            ["Orders:PollInterval"] = "00:01:00",
            ["Orders:StuckCheckInterval"] = "00:10:00",
            // The tests' webhook receivers listen on 127.0.0.1 over http; tests of the address guard turn this off.
            ["Handoff:AllowLoopbackWebhooks"] = "true",
            ["Serilog:MinimumLevel:Default"] = "Information",
            ["Serilog:MinimumLevel:Override:Microsoft"] = "Warning",
            ["Serilog:MinimumLevel:Override:System"] = "Warning",
            ["Serilog:MinimumLevel:Override:Quartz"] = "Warning",
        };
        for (var i = 0; i < offerings.Length; i++)
        {
            settings[$"Offerings:{i}:Uuid"] = offerings[i].ToString();
            settings[$"Offerings:{i}:Slug"] = $"offering-{i}";
        }

        foreach (var (key, value) in database.Settings)
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>
    /// Points the adapter at Langflow and RAGFlow emulators (or their fakes), which makes it provision real tenants (the
    /// provisioner production registers when <c>Langflow:BaseUrl</c> is set), with short retry delays.
    /// </summary>
    public static Dictionary<string, string?> WithUpstreams(this Dictionary<string, string?> settings, LangflowEmulator langflow, RagflowEmulator ragflow)
    {
        settings["Langflow:BaseUrl"] = langflow.Url.ToString();
        settings["Langflow:SuperuserUsername"] = LangflowEmulator.SuperuserUsername;
        settings["Langflow:SuperuserPassword"] = LangflowEmulator.SuperuserPassword;
        settings["Langflow:RetryAttempts"] = "2";
        settings["Langflow:RetryDelay"] = "00:00:00.020";
        // Generous: a first call into a fresh emulator on a busy 2-core machine can take over a second; tests of
        // timeouts set their own.
        settings["Langflow:AttemptTimeout"] = "00:00:05";
        settings["Ragflow:BaseUrl"] = ragflow.Url.ToString();
        settings["Ragflow:ApiKey"] = RagflowEmulator.ApiKey;
        settings["Ragflow:RetryAttempts"] = "2";
        settings["Ragflow:RetryDelay"] = "00:00:00.020";
        settings["Ragflow:AttemptTimeout"] = "00:00:05";
        return settings;
    }

    /// <summary>
    /// A failed <c>set_usage</c> is tried again at once, not after the product's 1 s and 4 s: no test sits those out. Tests
    /// of the waits register their own <see cref="UsageSendRetries"/> after this one.
    /// </summary>
    public static IServiceCollection WithoutUsageRetryWaits(this IServiceCollection services) =>
        services.AddSingleton(provider => new UsageSendRetries(provider.GetRequiredService<TimeProvider>()) { WaitAsync = (_, _) => Task.CompletedTask });

    /// <summary>The services only (what CLI commands get): no workers, nothing runs by itself.</summary>
    public static async Task<IHost> StartServicesAsync(IDictionary<string, string?> settings, CapturedLogs? logs = null, Action<IServiceCollection>? services = null)
    {
        var host = AdapterHost.BuildCommandHost(null, builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.Services.AddSingleton<ILogEventSink>(logs ?? new CapturedLogs());
            builder.Services.WithoutUsageRetryWaits();
            services?.Invoke(builder.Services);
        });
        await host.Services.MigrateAsync(CancellationToken.None);
        await host.StartAsync();
        return host;
    }

    /// <summary>The whole server with its workers, listening on a free loopback port.</summary>
    public static async Task<RunningAdapter> StartServerAsync(IDictionary<string, string?> settings, CapturedLogs? logs = null, Action<IServiceCollection>? services = null)
    {
        var captured = logs ?? new CapturedLogs();
        var app = AdapterHost.BuildServer(["--urls", "http://127.0.0.1:0"], null, builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            builder.Services.AddSingleton<ILogEventSink>(captured);
            builder.Services.WithoutUsageRetryWaits();
            services?.Invoke(builder.Services);
        });
        await app.Services.MigrateAsync(CancellationToken.None);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new RunningAdapter(app, new Uri(address.TrimEnd('/') + "/"), captured);
    }
}

public sealed class RunningAdapter(WebApplication app, Uri url, CapturedLogs logs) : IAsyncDisposable
{
    public WebApplication App { get; } = app;

    public Uri Url { get; } = url;

    public CapturedLogs Logs { get; } = logs;

    public IServiceProvider Services => App.Services;

    public HttpClient CreateClient() => new() { BaseAddress = Url };

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
        // Whatever the test did, no secret it created or configured may have been logged.
        TestSecrets.AssertNotLogged(Logs);
    }
}
