using System.Collections.Concurrent;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>A file of a document upload as RAGFlow received it.</summary>
internal sealed record ReceivedFile(string FileName, byte[] Content);

/// <summary>
/// RAGFlow as the adapter reaches it in upload tests: a Kestrel server on 127.0.0.1 that passes every request on, whole,
/// to the RAGFlow fake (which answers it and checks it against the spec as usual), but reads a document upload's body
/// itself as it arrives, so a test sees how much of an upload reached RAGFlow, complete or not, and the files byte for byte.
/// </summary>
internal sealed partial class RagflowUploadRelay : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _fake;
    private readonly ConcurrentQueue<ReceivedFile> _files = new();
    private readonly ConcurrentQueue<long?> _declaredUploadLengths = new();
    private long _uploadBytesReceived;

    private RagflowUploadRelay(WebApplication app, Uri fake)
    {
        _app = app;
        _fake = new HttpClient { BaseAddress = fake };
    }

    public Uri Url { get; private set; } = null!;

    /// <summary>Bytes of upload bodies received so far, complete or not.</summary>
    public long UploadBytesReceived => Interlocked.Read(ref _uploadBytesReceived);

    /// <summary>The files of every upload received whole, in order.</summary>
    public IReadOnlyList<ReceivedFile> Files => [.. _files];

    /// <summary>Each upload's Content-Length, null when it was sent without one, in order.</summary>
    public IReadOnlyList<long?> DeclaredUploadLengths => [.. _declaredUploadLengths];

    public static async Task<RagflowUploadRelay> StartAsync(Uri fake)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0);
            kestrel.Limits.MaxRequestBodySize = null;
        });
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var relay = new RagflowUploadRelay(app, fake);
        app.Run(relay.RelayAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        relay.Url = new Uri(address.TrimEnd('/') + "/");
        return relay;
    }

    private async Task RelayAsync(HttpContext context)
    {
        var request = context.Request;
        var isUpload = HttpMethods.IsPost(request.Method) && UploadRoute().IsMatch(request.Path.Value ?? string.Empty);
        if (isUpload)
        {
            _declaredUploadLengths.Enqueue(request.ContentLength);
        }

        var body = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
        {
            body.Write(buffer, 0, read);
            if (isUpload)
            {
                Interlocked.Add(ref _uploadBytesReceived, read);
            }
        }

        if (isUpload)
        {
            await KeepFilesAsync(request.ContentType, body.ToArray());
        }

        using var forward = new HttpRequestMessage(new HttpMethod(request.Method), request.Path.Value!.TrimStart('/') + request.QueryString);
        if (body.Length > 0 || request.ContentType is not null)
        {
            forward.Content = new ByteArrayContent(body.ToArray());
        }

        foreach (var (name, values) in request.Headers)
        {
            if (name.Equals(HeaderNames.Host, StringComparison.OrdinalIgnoreCase)
                || name.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase)
                || name.Equals(HeaderNames.TransferEncoding, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            if (!forward.Headers.TryAddWithoutValidation(name, values.ToArray()))
            {
                forward.Content?.Headers.TryAddWithoutValidation(name, values.ToArray());
            }
        }

        using var answer = await _fake.SendAsync(forward, context.RequestAborted);
        context.Response.StatusCode = (int)answer.StatusCode;
        context.Response.ContentType = answer.Content.Headers.ContentType?.ToString();
        await answer.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    private async Task KeepFilesAsync(string? contentType, byte[] body)
    {
        var boundary = HeaderUtilities.RemoveQuotes(MediaTypeHeaderValue.Parse(contentType).Boundary).Value!;
        var reader = new MultipartReader(boundary, new MemoryStream(body));
        while (await reader.ReadNextSectionAsync() is { } section)
        {
            var disposition = section.GetContentDispositionHeader();
            if (disposition is not null && disposition.IsFileDisposition())
            {
                using var content = new MemoryStream();
                await section.Body.CopyToAsync(content);
                _files.Enqueue(new ReceivedFile(HeaderUtilities.RemoveQuotes(disposition.FileName.HasValue ? disposition.FileName : disposition.FileNameStar).Value!, content.ToArray()));
            }
        }
    }

    [GeneratedRegex("^/api/v1/datasets/[^/]+/documents$")]
    private static partial Regex UploadRoute();

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _fake.Dispose();
    }
}
