using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.BrowserTests;

/// <summary>A buyer's website: one page embedding the widget, served by its own Kestrel on a loopback port.</summary>
public sealed class HostPage : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HostPage(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    /// <param name="requireCorp">
    /// Serve the page with <c>Cross-Origin-Embedder-Policy: require-corp</c> (a cross-origin isolated site): the browser
    /// then loads another origin's script or image only when it says <c>Cross-Origin-Resource-Policy: cross-origin</c>.
    /// </param>
    public static async Task<HostPage> StartAsync(Uri adapter, string publishableKey, bool requireCorp = false)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var html = $$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Buyer's shop</title></head>
            <body>
              <h1>Buyer's shop</h1>
              <script src="{{adapter}}widget.js"></script>
              <script>CMPWidget.init({ apiKey: '{{publishableKey}}', theme: 'light', position: 'bottom-right' });</script>
            </body></html>
            """;
        app.MapGet("/", (HttpContext http) =>
        {
            if (requireCorp)
            {
                http.Response.Headers["Cross-Origin-Embedder-Policy"] = "require-corp";
            }

            return Results.Content(html, "text/html; charset=utf-8");
        });
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return new HostPage(app, address.Port);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
