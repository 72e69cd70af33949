using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>
/// Incremental STOMP 1.2 frame parser: <see cref="Feed"/> bytes as they arrive (WebSocket message
/// boundaries do not matter), then call <see cref="TryRead"/> until it returns false. EOLs between
/// frames come out as <see cref="StompFrame.Heartbeat"/>. Not thread-safe.
/// </summary>
public sealed class StompFrameParser
{
    public const int DefaultMaxHeaderBytes = 64 * 1024;
    public const int DefaultMaxBodyBytes = 16 * 1024 * 1024;

    private const int InitialBufferSize = 4096;

    // Retaining a buffer grown for one large frame would pin that memory for the connection's life.
    private const int RetainedBufferLimit = 64 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly int _maxHeaderBytes;
    private readonly int _maxBodyBytes;
    private readonly List<KeyValuePair<string, string>> _headers = [];

    private byte[] _buffer = new byte[InitialBufferSize];
    private int _start;
    private int _end;

    // Where the search for the next LF or NUL resumes, so byte-by-byte feeding stays linear.
    private int _scan;
    private State _state;
    private string _command = string.Empty;
    private bool _escaped;
    private int _headerBytes;
    private int _contentLength = -1;
    private bool _faulted;

    public StompFrameParser(int maxHeaderBytes = DefaultMaxHeaderBytes, int maxBodyBytes = DefaultMaxBodyBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxHeaderBytes, 16);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBodyBytes);
        _maxHeaderBytes = maxHeaderBytes;
        _maxBodyBytes = maxBodyBytes;
    }

    private enum State
    {
        BetweenFrames,
        Command,
        Headers,
        Body,
    }

    /// <summary>Bytes fed but not yet consumed by a returned frame or heart-beat.</summary>
    public int BufferedBytes => _end - _start;

    public void Feed(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return;
        }

        EnsureFree(data.Length);
        data.CopyTo(_buffer.AsSpan(_end));
        _end += data.Length;
    }

    /// <summary>
    /// Returns the next complete frame or heart-beat, or false when more bytes are needed.
    /// </summary>
    /// <exception cref="StompProtocolException">The input is not valid STOMP; the parser is then unusable.</exception>
    public bool TryRead([NotNullWhen(true)] out StompFrame? frame)
    {
        if (_faulted)
        {
            throw new InvalidOperationException("The STOMP parser already rejected its input; use a new one.");
        }

        try
        {
            return TryReadCore(out frame);
        }
        catch (StompProtocolException)
        {
            _faulted = true;
            throw;
        }
    }

    private bool TryReadCore([NotNullWhen(true)] out StompFrame? frame)
    {
        frame = null;
        while (true)
        {
            switch (_state)
            {
                case State.BetweenFrames:
                    if (_start == _end)
                    {
                        ResetEmptyBuffer();
                        return false;
                    }

                    if (_buffer[_start] == StompFrameCodec.Lf)
                    {
                        _start++;
                        frame = StompFrame.Heartbeat;
                        return true;
                    }

                    if (_buffer[_start] == StompFrameCodec.Cr)
                    {
                        if (_end - _start < 2)
                        {
                            return false;
                        }

                        if (_buffer[_start + 1] != StompFrameCodec.Lf)
                        {
                            throw new StompProtocolException("CR not followed by LF between frames.");
                        }

                        _start += 2;
                        frame = StompFrame.Heartbeat;
                        return true;
                    }

                    _state = State.Command;
                    _scan = _start;
                    _headerBytes = 0;
                    break;

                case State.Command:
                case State.Headers:
                    if (!TryTakeLine(out var line))
                    {
                        return false;
                    }

                    if (_state == State.Command)
                    {
                        ReadCommand(line);
                    }
                    else if (line.IsEmpty)
                    {
                        _state = State.Body;
                        _scan = _start;
                    }
                    else
                    {
                        ReadHeader(line);
                    }

                    break;

                case State.Body:
                    return TryTakeBody(out frame);
            }
        }
    }

    private bool TryTakeLine(out ReadOnlySpan<byte> line)
    {
        var lf = _buffer.AsSpan(_scan, _end - _scan).IndexOf(StompFrameCodec.Lf);
        if (lf < 0)
        {
            _scan = _end;
            if (_headerBytes + (_end - _start) > _maxHeaderBytes)
            {
                throw new StompProtocolException($"Frame header section exceeds {_maxHeaderBytes} bytes.");
            }

            line = default;
            return false;
        }

        var lineEnd = _scan + lf;
        _headerBytes += lineEnd - _start + 1;
        if (_headerBytes > _maxHeaderBytes)
        {
            throw new StompProtocolException($"Frame header section exceeds {_maxHeaderBytes} bytes.");
        }

        line = _buffer.AsSpan(_start, lineEnd - _start);
        if (!line.IsEmpty && line[^1] == StompFrameCodec.Cr)
        {
            line = line[..^1];
        }

        _start = lineEnd + 1;
        _scan = _start;
        return true;
    }

    private void ReadCommand(ReadOnlySpan<byte> line)
    {
        if (!StompFrameCodec.IsValidCommand(line))
        {
            throw new StompProtocolException("Frame command is empty or not made of ASCII letters.");
        }

        _command = Encoding.ASCII.GetString(line);
        _escaped = StompFrameCodec.UsesHeaderEscaping(_command);
        _state = State.Headers;
    }

    private void ReadHeader(ReadOnlySpan<byte> line)
    {
        // A raw colon in a value is tolerated (split at the first one): some brokers send them,
        // and the name/value boundary is still unambiguous.
        var colon = line.IndexOf(StompFrameCodec.Colon);
        if (colon < 0)
        {
            throw new StompProtocolException($"Malformed header line in {_command} frame: no ':' separator.");
        }

        if (colon == 0)
        {
            throw new StompProtocolException($"Malformed header line in {_command} frame: empty header name.");
        }

        var name = DecodeUtf8(line[..colon]);
        var value = DecodeUtf8(line[(colon + 1)..]);
        if (_escaped)
        {
            name = StompFrameCodec.UnescapeHeader(name);
            value = StompFrameCodec.UnescapeHeader(value);
        }

        // Repeated headers: the first occurrence is the one that counts.
        if (_contentLength < 0 && string.Equals(name, StompHeaderNames.ContentLength, StringComparison.Ordinal))
        {
            if (!int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var length))
            {
                throw new StompProtocolException($"Invalid content-length '{value}' in {_command} frame.");
            }

            if (length > _maxBodyBytes)
            {
                throw new StompProtocolException($"{_command} frame body of {length} bytes exceeds the {_maxBodyBytes} byte limit.");
            }

            _contentLength = length;
        }

        _headers.Add(new KeyValuePair<string, string>(name, value));
    }

    private bool TryTakeBody([NotNullWhen(true)] out StompFrame? frame)
    {
        frame = null;
        int bodyLength;
        if (_contentLength >= 0)
        {
            if (_end - _start <= _contentLength)
            {
                return false;
            }

            if (_buffer[_start + _contentLength] != StompFrameCodec.Nul)
            {
                throw new StompProtocolException(
                    $"{_command} frame body of content-length {_contentLength} is not followed by a NUL octet.");
            }

            bodyLength = _contentLength;
        }
        else
        {
            var nul = _buffer.AsSpan(_scan, _end - _scan).IndexOf(StompFrameCodec.Nul);
            if (nul < 0)
            {
                _scan = _end;
                if (_end - _start > _maxBodyBytes)
                {
                    throw new StompProtocolException($"{_command} frame body exceeds the {_maxBodyBytes} byte limit.");
                }

                return false;
            }

            bodyLength = _scan + nul - _start;
            if (bodyLength > _maxBodyBytes)
            {
                throw new StompProtocolException($"{_command} frame body exceeds the {_maxBodyBytes} byte limit.");
            }
        }

        var body = _buffer.AsSpan(_start, bodyLength).ToArray();
        _start += bodyLength + 1;
        _scan = _start;
        frame = new StompFrame(_command, _headers, body);

        _headers.Clear();
        _contentLength = -1;
        _command = string.Empty;
        _state = State.BetweenFrames;
        return true;
    }

    private string DecodeUtf8(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw new StompProtocolException($"Header in {_command} frame is not valid UTF-8.", ex);
        }
    }

    private void EnsureFree(int needed)
    {
        if (_buffer.Length - _end >= needed)
        {
            return;
        }

        var live = _end - _start;
        var target = _buffer;
        if (_buffer.Length - live < needed)
        {
            target = new byte[Math.Max(_buffer.Length * 2, live + needed)];
        }

        // Consumed bytes (including parsed header lines) are no longer needed.
        Buffer.BlockCopy(_buffer, _start, target, 0, live);
        _buffer = target;
        _scan = Math.Max(_scan - _start, 0);
        _start = 0;
        _end = live;
    }

    private void ResetEmptyBuffer()
    {
        _start = 0;
        _end = 0;
        _scan = 0;
        if (_buffer.Length > RetainedBufferLimit)
        {
            _buffer = new byte[InitialBufferSize];
        }
    }
}
