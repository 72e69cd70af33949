using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>
/// A multipart upload of one file, of no declared length (sent chunked, as it is written): the first
/// <c>firstPart</c> bytes of the file go at once, the rest only once <c>resume</c> completes.
/// </summary>
internal sealed class HeldBackUpload : HttpContent
{
    private const int ChunkSize = 64 * 1024;

    private readonly string _boundary = "upload-" + Guid.NewGuid().ToString("N");
    private readonly string _fileName;
    private readonly byte[] _content;
    private readonly int _firstPart;
    private readonly Task _resume;
    private long _written;

    public HeldBackUpload(string fileName, byte[] content, int firstPart, Task resume)
    {
        (_fileName, _content, _firstPart, _resume) = (fileName, content, firstPart, resume);
        Headers.ContentType = MediaTypeHeaderValue.Parse($"multipart/form-data; boundary={_boundary}");
    }

    /// <summary>Bytes of the file written so far.</summary>
    public long Written => Interlocked.Read(ref _written);

    /// <summary>A file of <paramref name="length"/> bytes of numbered lines: a byte out of place or missing shows.</summary>
    public static byte[] NumberedLines(int length)
    {
        var text = new StringBuilder(length + 32);
        for (var line = 0; text.Length < length; line++)
        {
            text.Append("line ").Append(line).Append('\n');
        }

        return Encoding.ASCII.GetBytes(text.ToString(0, length));
    }

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"--{_boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{_fileName}\"\r\nContent-Type: text/plain\r\n\r\n"), cancellationToken);
        await WriteAsync(stream, 0, _firstPart, cancellationToken);
        await stream.FlushAsync(cancellationToken);
        await _resume.WaitAsync(cancellationToken);
        await WriteAsync(stream, _firstPart, _content.Length, cancellationToken);
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"\r\n--{_boundary}--\r\n"), cancellationToken);
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    private async Task WriteAsync(Stream stream, int from, int to, CancellationToken cancellationToken)
    {
        for (var offset = from; offset < to; offset += ChunkSize)
        {
            var count = Math.Min(ChunkSize, to - offset);
            await stream.WriteAsync(_content.AsMemory(offset, count), cancellationToken);
            Interlocked.Add(ref _written, count);
        }
    }
}
