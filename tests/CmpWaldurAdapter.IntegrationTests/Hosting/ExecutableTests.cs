using System.Diagnostics;
using System.Net;
using System.Text.Json;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

/// <summary>The real <c>cmp-adapter</c> executable, as an operator starts it: configuration from the environment.</summary>
public sealed class ExecutableTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Serve_writes_structured_json_logs_without_secrets_and_processes_orders()
    {
        _bed.Settings["Orders:PollInterval"] = "00:00:00.500";
        var port = LoopbackPorts.Free();
        var start = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "cmp-adapter.dll"), "serve", "--urls", $"http://127.0.0.1:{port}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetTempPath(),
        };
        foreach (var (key, value) in _bed.Settings.Where(s => !s.Key.StartsWith("Serilog", StringComparison.Ordinal)))
        {
            start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        var lines = new List<string>();
        using var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (lines)
                {
                    lines.Add(e.Data);
                }
            }
        };
        process.BeginOutputReadLine();
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
            await Eventually.TrueAsync(async () =>
            {
                try
                {
                    return (await client.GetAsync("/healthz")).StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), "the server starts");

            var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
            await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(30), "the polling job processes the order");
            await Eventually.TrueAsync(() => { lock (lines) { return lines.Any(l => l.Contains("is done", StringComparison.Ordinal)); } }, TimeSpan.FromSeconds(10));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        string[] captured;
        lock (lines)
        {
            captured = [.. lines];
        }

        Assert.NotEmpty(captured);
        // The process is killed, not stopped: its very last line may be cut short mid-write.
        if (captured.Length > 1 && !IsJson(captured[^1]))
        {
            captured = captured[..^1];
        }

        foreach (var line in captured)
        {
            JsonDocument json;
            try
            {
                json = JsonDocument.Parse(line); // every stdout line is one JSON object
            }
            catch (JsonException)
            {
                Assert.Fail("A stdout line is not JSON: " + line);
                throw;
            }

            using var parsed = json;
            Assert.True(json.RootElement.TryGetProperty("@t", out _), line);
            Assert.True(json.RootElement.TryGetProperty("@m", out _), line);
            Assert.DoesNotContain(WaldurFake.Token, line, StringComparison.Ordinal);
        }

        Assert.Contains(captured, l => l.Contains("\"OrderUuid\"", StringComparison.Ordinal));
    }

    private static bool IsJson(string line)
    {
        try
        {
            using var json = JsonDocument.Parse(line);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
