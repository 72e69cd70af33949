using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>
/// The chat benchmark's yardstick: the smallest proxy that makes the adapter's two upstream calls per message
/// (retrieval from the tenant's RAGFlow dataset, then the tenant's Langflow run with the context as a tweak) and
/// answers a <c>chat.completion</c>, with nothing else: no ledger, no checks beyond a key lookup in memory, no
/// resilience, metrics or logging. Run as its own process, like the adapter, it shows what this machine charges
/// for the two extra loopback round trips and Kestrel alone, so the adapter's own share can be told apart.
/// Started by <see cref="ChatGatewayBench"/> as <c>CmpWaldurAdapter.Benchmarks proxy-floor --urls URL</c>, with
/// the upstream addresses in <c>FLOOR_LANGFLOW</c> and <c>FLOOR_RAGFLOW</c>, the RAGFlow key in
/// <c>FLOOR_RAGFLOW_KEY</c>, and the tenants on standard input (keys never on a command line).
/// </summary>
internal static class ProxyFloor
{
    /// <summary>One subscriber as the floor serves it.</summary>
    public sealed record Tenant(string Key, string FlowId, string LangflowKey, string DatasetId, string Session);

    public static async Task<int> RunAsync(string[] args)
    {
        var tenants = JsonSerializer.Deserialize<List<Tenant>>(await Console.In.ReadToEndAsync())!.ToDictionary(t => t.Key, StringComparer.Ordinal);
        var langflow = new Uri(Environment.GetEnvironmentVariable("FLOOR_LANGFLOW")!);
        var ragflow = new Uri(Environment.GetEnvironmentVariable("FLOOR_RAGFLOW")!);
        var ragflowKey = Environment.GetEnvironmentVariable("FLOOR_RAGFLOW_KEY")!;
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        using var http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(10) });
        app.MapPost("/v1/chat/completions", async context =>
        {
            var bearer = context.Request.Headers.Authorization.ToString();
            if (!bearer.StartsWith("Bearer ", StringComparison.Ordinal) || !tenants.TryGetValue(bearer[7..], out var tenant))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                return;
            }

            var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
            var question = body!["messages"]!.AsArray()[^1]!["content"]!.GetValue<string>();

            using var retrieval = new HttpRequestMessage(HttpMethod.Post, new Uri(ragflow, "api/v1/retrieval"))
            {
                Content = Json(new JsonObject { ["dataset_ids"] = new JsonArray(tenant.DatasetId), ["question"] = question, ["page_size"] = 5 }),
            };
            retrieval.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ragflowKey);
            using var retrieved = await http.SendAsync(retrieval, context.RequestAborted);
            var chunks = (await JsonNode.ParseAsync(await retrieved.Content.ReadAsStreamAsync(context.RequestAborted), cancellationToken: context.RequestAborted))?["data"]?["chunks"]?.AsArray();
            var knowledge = string.Join("\n\n", chunks?.Select(c => c?["content"]?.GetValue<string>()) ?? []);

            using var run = new HttpRequestMessage(HttpMethod.Post, new Uri(langflow, $"api/v1/run/{tenant.FlowId}?stream=false"))
            {
                Content = Json(new JsonObject
                {
                    ["input_value"] = question,
                    ["input_type"] = "chat",
                    ["output_type"] = "chat",
                    ["session_id"] = tenant.Session,
                    ["tweaks"] = new JsonObject { ["Prompt-cmp01"] = new JsonObject { ["agent_name"] = "Ada", ["tone"] = "friendly", ["language"] = "en", ["context"] = knowledge } },
                }),
            };
            run.Headers.Add("x-api-key", tenant.LangflowKey);
            using var ran = await http.SendAsync(run, context.RequestAborted);
            var result = await JsonNode.ParseAsync(await ran.Content.ReadAsStreamAsync(context.RequestAborted), cancellationToken: context.RequestAborted);
            var answer = result!["outputs"]![0]!["outputs"]![0]!["results"]!["message"]!["text"]!.GetValue<string>();

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(new JsonObject
            {
                ["id"] = "chatcmpl-" + Guid.NewGuid().ToString("N"),
                ["object"] = "chat.completion",
                ["created"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
                ["model"] = EmulatedChatBed.Slug,
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = answer }, ["finish_reason"] = "stop" }),
            }.ToJsonString(), context.RequestAborted);
        });
        await app.RunAsync();
        return 0;
    }

    /// <summary>Starts the floor in its own process against the bed's emulators and waits until it answers.</summary>
    public static async Task<Running> StartAsync(EmulatedChatBed bed, IReadOnlyList<Tenant> tenants)
    {
        var url = new Uri($"http://127.0.0.1:{CmpWaldurAdapter.Testing.Hosting.LoopbackPorts.Free()}/");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { Path.Combine(AppContext.BaseDirectory, "CmpWaldurAdapter.Benchmarks.dll"), "proxy-floor", "--urls", url.ToString().TrimEnd('/') },
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        start.Environment["FLOOR_LANGFLOW"] = bed.Langflow.Url.ToString();
        start.Environment["FLOOR_RAGFLOW"] = bed.Ragflow.Url.ToString();
        start.Environment["FLOOR_RAGFLOW_KEY"] = CmpWaldurAdapter.Emulators.RagflowEmulator.ApiKey;
        var process = Process.Start(start) ?? throw new InvalidOperationException("the proxy floor did not start");
        await process.StandardInput.WriteAsync(JsonSerializer.Serialize(tenants));
        process.StandardInput.Close();
        var running = new Running(process, url);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        for (var attempt = 0; attempt < 150; attempt++)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"the proxy floor exited with {process.ExitCode}");
            }

            try
            {
                // Any answer (a 405 for GET) means it listens.
                using var _ = await http.GetAsync(new Uri(url, "v1/chat/completions"));
                return running;
            }
            catch (HttpRequestException)
            {
                await Task.Delay(200);
            }
        }

        await running.DisposeAsync();
        throw new TimeoutException("the proxy floor did not listen within 30 s");
    }

    /// <summary>The floor's process; disposing it (once or more) stops the process.</summary>
    public sealed class Running(Process process, Uri url) : IAsyncDisposable
    {
        private bool _disposed;

        public Uri Url { get; } = url;

        public async ValueTask DisposeAsync()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }

            process.Dispose();
        }
    }

    private static StringContent Json(JsonObject body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");
}
