using System.Buffers;
using System.Globalization;
using System.Text;

namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>
/// STOMP 1.2 frame serialization; <see cref="StompFrameParser"/> is the incremental counterpart.
/// Header names and values are UTF-8 with <c>\\ \n \r \c</c> escapes, except in CONNECT and
/// CONNECTED frames, which stay unescaped for STOMP 1.0 compatibility.
/// </summary>
public static class StompFrameCodec
{
    internal const byte Lf = (byte)'\n';
    internal const byte Cr = (byte)'\r';
    internal const byte Nul = 0;
    internal const byte Colon = (byte)':';

    private static readonly byte[] HeartbeatEol = [Lf];

    /// <summary>The bytes of one heart-beat.</summary>
    public static ReadOnlyMemory<byte> HeartbeatBytes => HeartbeatEol;

    /// <summary>Whether headers of frames with this command use escape sequences.</summary>
    public static bool UsesHeaderEscaping(string command) =>
        !string.Equals(command, StompCommands.Connect, StringComparison.Ordinal)
        && !string.Equals(command, StompCommands.Connected, StringComparison.Ordinal);

    public static byte[] Encode(StompFrame frame)
    {
        var output = new ArrayBufferWriter<byte>(128 + frame.Body.Length);
        Encode(frame, output);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes the frame. A <c>content-length</c> header is added when the body is not empty and the
    /// frame has none; one that disagrees with the body is rejected rather than sent.
    /// </summary>
    /// <exception cref="ArgumentException">The frame cannot be represented on the wire.</exception>
    public static void Encode(StompFrame frame, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ArgumentNullException.ThrowIfNull(output);
        if (frame.IsHeartbeat)
        {
            output.Write(HeartbeatEol);
            return;
        }

        ValidateCommand(frame.Command);
        var escape = UsesHeaderEscaping(frame.Command);

        WriteUtf8(output, frame.Command);
        output.Write([Lf]);

        if (frame.TryGetHeader(StompHeaderNames.ContentLength, out var declared)
            && !string.Equals(declared, frame.Body.Length.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal))
        {
            throw new ArgumentException(
                $"Frame {frame.Command} declares content-length {declared} but its body has {frame.Body.Length} bytes.",
                nameof(frame));
        }

        foreach (var header in frame.Headers)
        {
            WriteHeaderPart(output, header.Key, escape, isName: true, frame.Command);
            output.Write([Colon]);
            WriteHeaderPart(output, header.Value, escape, isName: false, frame.Command);
            output.Write([Lf]);
        }

        // The body may contain NUL octets; content-length is what lets the peer read past them.
        if (!frame.Body.IsEmpty && declared is null)
        {
            WriteUtf8(output, StompHeaderNames.ContentLength);
            output.Write([Colon]);
            WriteUtf8(output, frame.Body.Length.ToString(CultureInfo.InvariantCulture));
            output.Write([Lf]);
        }

        output.Write([Lf]);
        output.Write(frame.Body.Span);
        output.Write([Nul]);
    }

    /// <summary>Applies STOMP 1.2 header escaping.</summary>
    public static string EscapeHeader(string text)
    {
        if (text.AsSpan().IndexOfAny("\\\r\n:") < 0)
        {
            return text;
        }

        var escaped = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            switch (c)
            {
                case '\\': escaped.Append(@"\\"); break;
                case '\r': escaped.Append(@"\r"); break;
                case '\n': escaped.Append(@"\n"); break;
                case ':': escaped.Append(@"\c"); break;
                default: escaped.Append(c); break;
            }
        }

        return escaped.ToString();
    }

    /// <summary>Reverses STOMP 1.2 header escaping.</summary>
    /// <exception cref="StompProtocolException">An undefined escape such as <c>\t</c>, or a trailing backslash.</exception>
    public static string UnescapeHeader(string text)
    {
        var first = text.IndexOf('\\', StringComparison.Ordinal);
        if (first < 0)
        {
            return text;
        }

        var plain = new StringBuilder(text.Length);
        plain.Append(text, 0, first);
        for (var i = first; i < text.Length; i++)
        {
            var c = text[i];
            if (c != '\\')
            {
                plain.Append(c);
                continue;
            }

            if (++i == text.Length)
            {
                throw new StompProtocolException("Header ends with a lone backslash (incomplete escape sequence).");
            }

            plain.Append(text[i] switch
            {
                '\\' => '\\',
                'r' => '\r',
                'n' => '\n',
                'c' => ':',
                _ => throw new StompProtocolException(
                    $"Undefined escape sequence '\\{text[i]}' in a header; STOMP 1.2 defines only \\\\, \\r, \\n and \\c."),
            });
        }

        return plain.ToString();
    }

    internal static bool IsValidCommand(ReadOnlySpan<byte> command)
    {
        if (command.IsEmpty)
        {
            return false;
        }

        foreach (var b in command)
        {
            if (!char.IsAsciiLetter((char)b))
            {
                return false;
            }
        }

        return true;
    }

    private static void ValidateCommand(string command)
    {
        foreach (var c in command)
        {
            if (!char.IsAsciiLetter(c))
            {
                throw new ArgumentException($"'{command}' is not a STOMP command.", nameof(command));
            }
        }
    }

    private static void WriteHeaderPart(IBufferWriter<byte> output, string text, bool escape, bool isName, string command)
    {
        if (isName && text.Length == 0)
        {
            throw new ArgumentException($"A {command} frame has a header with an empty name.", nameof(text));
        }

        if (escape)
        {
            WriteUtf8(output, EscapeHeader(text));
            return;
        }

        // Unescaped frames cannot carry EOLs at all, nor colons in names. The message names the
        // header position only: values here may be credentials.
        if (text.AsSpan().IndexOfAny('\r', '\n') >= 0 || (isName && text.Contains(':', StringComparison.Ordinal)))
        {
            throw new ArgumentException(
                $"A {command} header {(isName ? "name" : "value")} contains a character that {command} frames cannot carry unescaped.",
                nameof(text));
        }

        WriteUtf8(output, text);
    }

    private static void WriteUtf8(IBufferWriter<byte> output, string text)
    {
        var span = output.GetSpan(Encoding.UTF8.GetMaxByteCount(text.Length));
        output.Advance(Encoding.UTF8.GetBytes(text, span));
    }
}
