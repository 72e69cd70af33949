using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// An upload sent chunked over a plain socket, whose answer is read while the client still holds back part of the
/// body. HttpClient hands out an HTTP/1.1 answer only once the whole request is sent, so it cannot show an early one.
/// </summary>
internal sealed class RawUpload : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _network;

    private RawUpload(TcpClient tcp)
    {
        _tcp = tcp;
        _network = tcp.GetStream();
    }

    /// <summary>Writing the body: it stops where the content holds back, and fails once the server has closed the connection.</summary>
    public Task Sending { get; private set; } = Task.CompletedTask;

    public static async Task<RawUpload> StartAsync(Uri server, string path, string key, HttpContent content)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(server.Host, server.Port);
        var upload = new RawUpload(tcp);
        var head = $"POST {path} HTTP/1.1\r\nHost: {server.Authority}\r\nAuthorization: Bearer {key}\r\n"
            + $"Content-Type: {content.Headers.ContentType}\r\nTransfer-Encoding: chunked\r\n\r\n";
        await upload._network.WriteAsync(Encoding.ASCII.GetBytes(head));
        upload.Sending = Task.Run(async () =>
        {
            await content.CopyToAsync(new ChunkWriter(upload._network));
            await upload._network.WriteAsync("0\r\n\r\n"u8.ToArray());
        });
        return upload;
    }

    /// <summary>The answer's status and body, as soon as it is complete.</summary>
    public async Task<(HttpStatusCode Status, string Body)> ReadAnswerAsync(CancellationToken cancellationToken)
    {
        var received = new List<byte>();
        var buffer = new byte[8192];
        while (true)
        {
            var read = await _network.ReadAsync(buffer, cancellationToken);
            if (read == 0)
            {
                throw new IOException("The server closed the connection before its answer was complete.");
            }

            received.AddRange(buffer.AsSpan(0, read));
            if (TryParse(Encoding.ASCII.GetString([.. received]), out var status, out var body))
            {
                return (status, body);
            }
        }
    }

    /// <summary>A complete HTTP/1.1 answer: its body by Content-Length or chunked (an answer with neither has none).</summary>
    private static bool TryParse(string text, out HttpStatusCode status, out string body)
    {
        (status, body) = (default, string.Empty);
        var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (headEnd < 0)
        {
            return false;
        }

        var lines = text[..headEnd].Split("\r\n");
        status = (HttpStatusCode)int.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim(), p => p[1].Trim(), StringComparer.OrdinalIgnoreCase);
        var rest = text[(headEnd + 4)..];
        if (headers.TryGetValue("Content-Length", out var length))
        {
            var size = int.Parse(length, CultureInfo.InvariantCulture);
            body = rest.Length >= size ? rest[..size] : string.Empty;
            return rest.Length >= size;
        }

        if (!headers.TryGetValue("Transfer-Encoding", out var encoding) || !encoding.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var chunks = new StringBuilder();
        for (var at = 0; ;)
        {
            var sizeEnd = rest.IndexOf("\r\n", at, StringComparison.Ordinal);
            if (sizeEnd < 0)
            {
                return false;
            }

            var size = int.Parse(rest[at..sizeEnd].Split(';')[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (size == 0)
            {
                body = chunks.ToString();
                return true;
            }

            if (rest.Length < sizeEnd + 2 + size + 2)
            {
                return false;
            }

            chunks.Append(rest, sizeEnd + 2, size);
            at = sizeEnd + 2 + size + 2;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        // The body still held back cannot go anywhere now; its failure is expected.
        await Sending.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    /// <summary>Writes what it is given as HTTP/1.1 chunks, each sent at once.</summary>
    private sealed class ChunkWriter(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.Length == 0)
            {
                return;
            }

            await inner.WriteAsync(Encoding.ASCII.GetBytes($"{buffer.Length:X}\r\n"), cancellationToken);
            await inner.WriteAsync(buffer, cancellationToken);
            await inner.WriteAsync("\r\n"u8.ToArray(), cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
