using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Sources;

/// <summary>A real web server on 127.0.0.1 for the URL reader: pages, redirects, oversize and slow answers.</summary>
internal sealed class LoopbackSite : IAsyncDisposable
{
    public const string Html = """
        <!DOCTYPE html>
        <html><head><title>Acme &amp; Co — Returns</title>
        <style>body { color: red; }</style>
        <script>var secret = "do not index";</script></head>
        <body>
        <nav><a href="/">Home</a> | <a href="/about">About</a></nav>
        <h1>Returns policy</h1>
        <p>Items can be returned within <b>30&nbsp;days</b>.
           Refunds take 5&ndash;7 days.</p>
        <ul><li>Keep the receipt</li><li>Use the original box</li></ul>
        <table><tr><th>Item</th><th>Window</th></tr><tr><td>Shoes</td><td>30 days</td></tr></table>
        </body></html>
        """;

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<string> _requests = new();

    private LoopbackSite(WebApplication app)
    {
        _app = app;
    }

    public Uri Url { get; private set; } = null!;

    public int Port => Url.Port;

    public IReadOnlyList<string> Requests => [.. _requests];

    public string At(string path) => new Uri(Url, path).ToString();

    public static async Task<LoopbackSite> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var site = new LoopbackSite(app);
        app.Use(async (context, next) =>
        {
            site._requests.Enqueue(context.Request.Path + context.Request.QueryString);
            await next(context);
        });

        app.MapGet("/page.html", (HttpContext context) =>
        {
            context.Response.Headers.ETag = "\"v1\"";
            return Results.Text(Html, "text/html; charset=utf-8");
        });
        app.MapGet("/notes.txt", () => Results.Text("plain notes\n", "text/plain"));
        app.MapGet("/image.png", () => Results.Bytes([0x89, 0x50, 0x4E, 0x47], "image/png"));
        app.MapGet("/untyped", async (HttpContext context) => await context.Response.Body.WriteAsync("no type"u8.ToArray()));
        app.MapGet("/big-declared", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain";
            context.Response.ContentLength = 200_000;
            await context.Response.Body.WriteAsync(new byte[200_000].Select(_ => (byte)'a').ToArray(), context.RequestAborted);
        });
        app.MapGet("/big-chunked", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain";
            var chunk = Encoding.ASCII.GetBytes(new string('b', 10_000));
            for (var i = 0; i < 20 && !context.RequestAborted.IsCancellationRequested; i++)
            {
                await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        });
        app.MapGet("/slow", async (HttpContext context) =>
        {
            await Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted);
            return Results.Text("late", "text/plain");
        });
        app.MapGet("/trickle", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain";
            for (var i = 0; i < 40 && !context.RequestAborted.IsCancellationRequested; i++)
            {
                await context.Response.Body.WriteAsync("x"u8.ToArray(), context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
                await Task.Delay(250, context.RequestAborted);
            }
        });
        app.MapGet("/redirect", (string to) => Results.Redirect(to));
        app.MapGet("/loop/{n:int}", (int n) => Results.Redirect($"/loop/{n + 1}"));
        app.MapGet("/status/{code:int}", (int code) => Results.StatusCode(code));

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        site.Url = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).TrimEnd('/') + "/");
        return site;
    }

    public int Count(string pathPrefix) => _requests.Count(r => r.StartsWith(pathPrefix, StringComparison.Ordinal));

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
