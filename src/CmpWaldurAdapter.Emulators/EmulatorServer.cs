using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.Emulators;

/// <summary>
/// Serves an emulator's routes on Kestrel (loopback): one catch-all endpoint that hands every request to
/// <see cref="Emulator.HandleAsync"/>, streams streamed answers as they are written, and keeps every exchange (bounded).
/// </summary>
internal sealed class EmulatorServer : IAsyncDisposable
{
    private const int MaxExchanges = 10_000;
    private readonly LinkedList<EmulatorExchange> _exchanges = new();
    private readonly Emulator _emulator;
    private WebApplication? _app;

    private EmulatorServer(Emulator emulator)
    {
        _emulator = emulator;
    }

    public Uri Url { get; private set; } = new("http://127.0.0.1/");

    public IReadOnlyList<EmulatorExchange> Exchanges
    {
        get
        {
            lock (_exchanges)
            {
                return [.. _exchanges];
            }
        }
    }

    public static async Task<EmulatorServer> StartAsync(Emulator emulator, int port, CancellationToken cancellationToken)
    {
        var server = new EmulatorServer(emulator);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        server._app = builder.Build();
        server._app.Run(server.DispatchAsync);
        await server._app.StartAsync(cancellationToken);
        var address = server._app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Url = new Uri(address.TrimEnd('/') + "/");
        return server;
    }

    private async Task DispatchAsync(HttpContext context)
    {
        var message = await ReadAsync(context.Request);
        var response = await _emulator.HandleAsync(message);
        context.Response.StatusCode = response.Status;
        context.Response.ContentType = response.ContentType;
        foreach (var (name, value) in response.Headers ?? new Dictionary<string, string>())
        {
            context.Response.Headers[name] = value;
        }

        if (response.Stream is { } stream)
        {
            Record(new EmulatorExchange(message, response.Status, response.ContentType, null, DateTimeOffset.UtcNow));
            await context.Response.StartAsync(context.RequestAborted);
            await stream(context.Response.Body, context.RequestAborted);
            return;
        }

        Record(new EmulatorExchange(message, response.Status, response.Body is null ? null : response.ContentType, response.Body, DateTimeOffset.UtcNow));
        if (response.Body is not null)
        {
            await context.Response.WriteAsync(response.Body, context.RequestAborted);
        }
    }

    private static async Task<EmulatorMessage> ReadAsync(HttpRequest request)
    {
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer);
        return new EmulatorMessage
        {
            Method = request.Method,
            Path = request.Path.Value ?? "/",
            PathAndQuery = (request.Path.Value ?? "/") + request.QueryString.Value,
            Query = request.Query.ToDictionary(q => q.Key, q => q.Value.Select(v => v ?? string.Empty).ToArray()),
            Headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.Select(v => v ?? string.Empty).ToArray(), StringComparer.OrdinalIgnoreCase),
            ContentType = request.ContentType,
            BodyAsBytes = buffer.ToArray(),
        };
    }

    private void Record(EmulatorExchange exchange)
    {
        lock (_exchanges)
        {
            _exchanges.AddLast(exchange);
            if (_exchanges.Count > MaxExchanges)
            {
                _exchanges.RemoveFirst();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
