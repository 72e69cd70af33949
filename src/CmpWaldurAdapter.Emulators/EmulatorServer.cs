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
/// Request bodies have no size limit (RAGFlow's own is its operator's setting), and a multipart body's file parts
/// are kept up to <see cref="Emulator.KeptFileBytes"/> each: the exchanges hold every body, and a benchmark's large uploads
/// would otherwise pile up here (the whole file arrives all the same; the part says how long it was).
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
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = null);
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
        if (MultipartBoundary(request.ContentType) is { } boundary)
        {
            await ReadMultipartAsync(request.Body, boundary, buffer);
        }
        else
        {
            await request.Body.CopyToAsync(buffer);
        }

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

    private static string? MultipartBoundary(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)
        && media.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase)
        && media.Boundary.Value is { Length: > 0 } boundary
            ? boundary.Trim('"')
            : null;

    /// <summary>
    /// The multipart body rebuilt part by part as it arrives: a file part longer than <see cref="Emulator.KeptFileBytes"/> is
    /// read to its end but kept shortened, with <see cref="Emulator.SentLengthHeader"/> saying how long it was.
    /// </summary>
    private static async Task ReadMultipartAsync(Stream body, string boundary, MemoryStream rebuilt)
    {
        var reader = new Microsoft.AspNetCore.WebUtilities.MultipartReader(boundary, body);
        var chunk = new byte[81920];
        while (await reader.ReadNextSectionAsync() is { } section)
        {
            using var kept = new MemoryStream();
            long sent = 0;
            int read;
            var isFile = section.ContentDisposition?.Contains("filename", StringComparison.OrdinalIgnoreCase) == true;
            while ((read = await section.Body.ReadAsync(chunk)) > 0)
            {
                var keep = isFile ? (int)Math.Clamp(Emulator.KeptFileBytes - sent, 0, read) : read;
                kept.Write(chunk, 0, keep);
                sent += read;
            }

            var head = new System.Text.StringBuilder($"--{boundary}\r\n");
            foreach (var (name, values) in section.Headers ?? new Dictionary<string, Microsoft.Extensions.Primitives.StringValues>())
            {
                head.Append(name).Append(": ").Append(values.ToString()).Append("\r\n");
            }

            if (sent > kept.Length)
            {
                head.Append(Emulator.SentLengthHeader).Append(": ").Append(sent).Append("\r\n");
            }

            rebuilt.Write(System.Text.Encoding.UTF8.GetBytes(head.Append("\r\n").ToString()));
            kept.Position = 0;
            await kept.CopyToAsync(rebuilt);
            rebuilt.Write("\r\n"u8);
        }

        rebuilt.Write(System.Text.Encoding.UTF8.GetBytes($"--{boundary}--\r\n"));
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
