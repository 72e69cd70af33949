using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>
/// A fast in-process (Kestrel, loopback) stand-in for Langflow's run endpoint and RAGFlow's retrieval, for
/// what WireMock cannot do: streams that trickle (token by token, with a delay) so a client can leave
/// mid-run, observing that the adapter's upstream request was cancelled. Answers <c>echo: {input}</c>. Keys and
/// flow ownership are not checked (the emulator-backed fakes do; the gateway benchmark runs on the emulators).
/// </summary>
public sealed class LangflowRunFake : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _runs;
    private int _aborted;
    private int _completed;
    private int _retrievals;

    private LangflowRunFake(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    public Uri Url { get; }

    /// <summary>Pause before each streamed token (zero: the whole stream at once).</summary>
    public TimeSpan TokenDelay { get; set; }

    /// <summary>Pause before a stream's first event, as an agent calling tools or a slow model takes.</summary>
    public TimeSpan FirstTokenDelay { get; set; }

    /// <summary>Pause before a plain (non-streamed) run answers.</summary>
    public TimeSpan RunDelay { get; set; }

    /// <summary>Pause before a retrieval answers, as a busy RAGFlow takes.</summary>
    public TimeSpan RetrievalDelay { get; set; }

    /// <summary>Streams close after <see cref="FirstTokenDelay"/> without a single event (a run that died).</summary>
    public bool StreamsDie { get; set; }

    /// <summary>Tokens per streamed answer (the answer is padded with words when shorter).</summary>
    public int StreamTokens { get; set; } = 8;

    public int Runs => Volatile.Read(ref _runs);

    /// <summary>Runs whose caller went away before the run finished.</summary>
    public int Aborted => Volatile.Read(ref _aborted);

    public int Completed => Volatile.Read(ref _completed);

    /// <summary>Retrievals received (answered or not).</summary>
    public int Retrievals => Volatile.Read(ref _retrievals);

    public static async Task<LangflowRunFake> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        LangflowRunFake? fake = null;
        app.MapPost("/api/v1/run/{flowId}", (HttpContext http, string flowId) => fake!.RunAsync(http));
        app.MapPost("/api/v1/retrieval", (CancellationToken aborted) => fake!.RetrieveAsync(aborted));
        app.MapGet("/health_check", () => Results.Text("""{"status":"ok","chat":"ok","db":"ok"}""", "application/json"));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        fake = new LangflowRunFake(app, new Uri(address.TrimEnd('/') + "/"));
        return fake;
    }

    private async Task RunAsync(HttpContext http)
    {
        Interlocked.Increment(ref _runs);
        using var body = await JsonDocument.ParseAsync(http.Request.Body, cancellationToken: http.RequestAborted);
        var input = body.RootElement.TryGetProperty("input_value", out var value) ? value.GetString() ?? string.Empty : string.Empty;
        var session = body.RootElement.TryGetProperty("session_id", out var s) ? s.GetString() : null;
        var answer = "echo: " + input;
        try
        {
            if (http.Request.Query["stream"] != "true")
            {
                if (RunDelay > TimeSpan.Zero)
                {
                    await Task.Delay(RunDelay, http.RequestAborted);
                }

                http.Response.ContentType = "application/json";
                await http.Response.WriteAsync(Result(session, input, answer).ToJsonString(), http.RequestAborted);
                Interlocked.Increment(ref _completed);
                return;
            }

            http.Response.ContentType = "text/event-stream";
            if (FirstTokenDelay > TimeSpan.Zero)
            {
                await http.Response.StartAsync(http.RequestAborted);
                await Task.Delay(FirstTokenDelay, http.RequestAborted);
            }

            if (StreamsDie)
            {
                return;
            }

            var words = answer.Split(' ').ToList();
            while (words.Count < StreamTokens)
            {
                words.Add("more");
            }

            var events = new StringBuilder();
            events.Append(Event("add_message", new JsonObject { ["sender"] = "Machine", ["text"] = string.Empty, ["id"] = "m1", ["session_id"] = session }));
            for (var i = 0; i < words.Count; i++)
            {
                events.Append(Event("token", new JsonObject { ["chunk"] = i == 0 ? words[i] : " " + words[i], ["id"] = "m1" }));
                if (TokenDelay > TimeSpan.Zero)
                {
                    await http.Response.WriteAsync(events.ToString(), http.RequestAborted);
                    await http.Response.Body.FlushAsync(http.RequestAborted);
                    events.Clear();
                    await Task.Delay(TokenDelay, http.RequestAborted);
                }
            }

            events.Append(Event("end", new JsonObject { ["result"] = Result(session, input, string.Join(' ', words)) }));
            await http.Response.WriteAsync(events.ToString(), http.RequestAborted);
            Interlocked.Increment(ref _completed);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            Interlocked.Increment(ref _aborted);
        }
    }

    private async Task<IResult> RetrieveAsync(CancellationToken aborted)
    {
        Interlocked.Increment(ref _retrievals);
        if (RetrievalDelay > TimeSpan.Zero)
        {
            await Task.Delay(RetrievalDelay, aborted).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        return Results.Text("""{"code":0,"data":{"chunks":[],"doc_aggs":[],"total":0}}""", "application/json");
    }

    private static string Event(string name, JsonNode data) => new JsonObject { ["event"] = name, ["data"] = data }.ToJsonString() + "\n\n";

    private static JsonObject Result(string? session, string input, string answer) => new()
    {
        ["session_id"] = session,
        ["outputs"] = new JsonArray(new JsonObject
        {
            ["inputs"] = new JsonObject { ["input_value"] = input },
            ["outputs"] = new JsonArray(new JsonObject
            {
                ["results"] = new JsonObject { ["message"] = new JsonObject { ["text"] = answer, ["sender"] = "Machine", ["session_id"] = session } },
                ["component_id"] = "ChatOutput-cmp01",
            }),
        }),
    };

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
