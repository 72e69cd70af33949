using System.Diagnostics;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Faults;

/// <summary>
/// The real <c>cmp-adapter serve</c> process killed (SIGKILL) while it provisions tenants, then started
/// again on the same database: every order ends done once, with one tenant each and no twins upstream.
/// </summary>
public sealed class ProcessKillTests : IAsyncLifetime
{
    private const int Orders = 4;

    private TenantTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await TenantTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_adapter_killed_mid_provisioning_resumes_after_a_restart_and_does_nothing_twice()
    {
        _bed.Settings["Orders:PollInterval"] = "00:00:00.500";
        _bed.Settings["Orders:LeaseDuration"] = "00:00:03"; // the killed process's leases expire quickly
        var orders = Enumerable.Range(0, Orders).Select(i => _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes($"Agent {i}"))).ToList();
        var flowCreated = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _bed.Langflow.Observe = (request, _) =>
        {
            if (request.Method == "POST" && request.Path == "/api/v1/flows/")
            {
                flowCreated.TrySetResult();
            }
        };

        using (var first = Serve())
        {
            await flowCreated.Task.WaitAsync(TimeSpan.FromSeconds(60));
            first.Kill(entireProcessTree: true); // right after a flow was made upstream, before the step is recorded
            await first.WaitForExitAsync();
        }

        _bed.Langflow.Observe = null;
        Assert.Contains(orders, o => _bed.Waldur.OrderState(o) != "done");

        using var second = Serve();
        try
        {
            await Eventually.TrueAsync(() => orders.All(o => _bed.Waldur.OrderState(o) == "done"), TimeSpan.FromSeconds(90), "the restarted adapter finishes every order");
        }
        finally
        {
            second.Kill(entireProcessTree: true);
            await second.WaitForExitAsync();
        }

        Assert.All(orders, o => Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{o}/set_state_done/")));
        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        Assert.Equal(Orders, _bed.Langflow.Flows.Count);
        Assert.Equal(Orders, _bed.Ragflow.Datasets.Count);
        foreach (var resource in orders.Select(_bed.Waldur.ResourceOf))
        {
            Assert.Single(_bed.Langflow.Projects, p => p.Name == $"cmp-{resource:N}");
            Assert.Single(_bed.Ragflow.Datasets, d => d["name"]!.GetValue<string>() == $"cmp-{resource:N}");
        }
    }

    private Process Serve()
    {
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "cmp-adapter.dll"), "serve", "--urls", $"http://127.0.0.1:{LoopbackPorts.Free()}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var (key, value) in _bed.Settings.Where(s => !s.Key.StartsWith("Serilog", StringComparison.Ordinal)))
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        var process = Process.Start(start)!;
        // Drain the output so a full pipe never blocks the process.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }
}
