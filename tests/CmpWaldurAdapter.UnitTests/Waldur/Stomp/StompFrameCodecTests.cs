using System.Text;
using CmpWaldurAdapter.Waldur.Events.Stomp;

namespace CmpWaldurAdapter.UnitTests.Waldur.Stomp;

public sealed class StompFrameCodecTests
{
    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);

    private static List<StompFrame> ParseAll(byte[] bytes, StompFrameParser? parser = null)
    {
        parser ??= new StompFrameParser();
        parser.Feed(bytes);
        var frames = new List<StompFrame>();
        while (parser.TryRead(out var frame))
        {
            frames.Add(frame);
        }

        return frames;
    }

    private static StompFrame ParseSingle(string wire) => Assert.Single(ParseAll(Utf8(wire)));

    private static StompProtocolException ParseFails(string wire) =>
        Assert.Throws<StompProtocolException>(() => ParseAll(Utf8(wire)));

    [Fact]
    public void Encode_writes_the_exact_wire_format_with_content_length_for_a_body()
    {
        var frame = new StompFrame("SEND", [new("destination", "/queue/a"), new("x", "1")], Utf8("hi"));

        Assert.Equal("SEND\ndestination:/queue/a\nx:1\ncontent-length:2\n\nhi\0", Text(StompFrameCodec.Encode(frame)));
    }

    [Fact]
    public void Encode_without_body_writes_no_content_length()
    {
        var frame = new StompFrame("SUBSCRIBE", [new("id", "0"), new("destination", "/queue/a")]);

        Assert.Equal("SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\0", Text(StompFrameCodec.Encode(frame)));
    }

    [Fact]
    public void Encode_rejects_a_content_length_that_disagrees_with_the_body()
    {
        var frame = new StompFrame("SEND", [new("destination", "/q"), new("content-length", "5")], Utf8("abc"));

        Assert.Throws<ArgumentException>(() => StompFrameCodec.Encode(frame));
    }

    [Fact]
    public void Encode_heartbeat_is_a_single_EOL()
    {
        Assert.Equal("\n", Text(StompFrameCodec.Encode(StompFrame.Heartbeat)));
    }

    [Fact]
    public void Round_trip_preserves_command_headers_and_binary_body()
    {
        var body = new byte[] { 1, 2, 0, 255, 0, 3 };
        var original = new StompFrame(
            "MESSAGE",
            [new("destination", "/topic/x"), new("message-id", "m-1"), new("subscription", "s"), new("custom", "ünïcödé")],
            body);

        var parsed = Assert.Single(ParseAll(StompFrameCodec.Encode(original)));

        Assert.Equal("MESSAGE", parsed.Command);
        Assert.Equal([.. original.Headers, new("content-length", "6")], parsed.Headers);
        Assert.Equal(body, parsed.Body.ToArray());
    }

    [Fact]
    public void Special_characters_in_header_names_and_values_are_escaped_on_the_wire_and_restored_by_the_parser()
    {
        var name = "we:ird\\name\n";
        var value = "line1\nline2\r:end\\";
        var frame = new StompFrame("SEND", [new("destination", "/q"), new(name, value)]);

        var wire = Text(StompFrameCodec.Encode(frame));

        Assert.Equal("SEND\ndestination:/q\nwe\\cird\\\\name\\n:line1\\nline2\\r\\cend\\\\\n\n\0", wire);
        var parsed = ParseSingle(wire);
        Assert.Equal(value, parsed.GetHeader(name));
    }

    [Fact]
    public void CONNECT_headers_are_written_without_escaping()
    {
        var frame = new StompFrame("CONNECT", [new("login", "guest"), new("passcode", "p:a\\ss")]);

        Assert.Equal("CONNECT\nlogin:guest\npasscode:p:a\\ss\n\n\0", Text(StompFrameCodec.Encode(frame)));
    }

    [Fact]
    public void CONNECT_rejects_values_it_cannot_carry_unescaped()
    {
        var frame = new StompFrame("CONNECT", [new("passcode", "two\nlines")]);

        var error = Assert.Throws<ArgumentException>(() => StompFrameCodec.Encode(frame));
        Assert.DoesNotContain("two", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CONNECTED_headers_are_parsed_without_unescaping()
    {
        // In any other frame "\c" and "\t" would be decoded or rejected.
        var frame = ParseSingle("CONNECTED\nversion:1.2\nserver:Rabbit\\c\\t:3\n\n\0");

        Assert.Equal("Rabbit\\c\\t:3", frame.GetHeader("server"));
    }

    [Fact]
    public void Content_length_body_may_contain_NUL_octets()
    {
        var frames = ParseAll(Utf8("MESSAGE\ncontent-length:5\n\na\0b\0c\0MESSAGE\n\nnext\0"));

        Assert.Equal(2, frames.Count);
        Assert.Equal(new byte[] { (byte)'a', 0, (byte)'b', 0, (byte)'c' }, frames[0].Body.ToArray());
        Assert.Equal("next", frames[1].GetBodyAsString());
    }

    [Fact]
    public void Without_content_length_the_body_ends_at_the_first_NUL()
    {
        var frames = ParseAll(Utf8("MESSAGE\nfoo:bar\n\nhello\0world\0"));

        var frame = Assert.Single(frames);
        Assert.Equal("hello", frame.GetBodyAsString());
        Assert.Equal("bar", frame.GetHeader("foo"));
    }

    [Fact]
    public void Empty_body_and_empty_header_value_are_valid()
    {
        var frame = ParseSingle("RECEIPT\nreceipt-id:77\nempty:\n\n\0");

        Assert.Equal("RECEIPT", frame.Command);
        Assert.Equal("77", frame.GetHeader("receipt-id"));
        Assert.Equal(string.Empty, frame.GetHeader("empty"));
        Assert.True(frame.Body.IsEmpty);
    }

    [Fact]
    public void Several_frames_in_one_chunk_come_out_in_order()
    {
        var wire = Utf8("MESSAGE\nn:1\n\none\0RECEIPT\nreceipt-id:r\n\n\0ERROR\nmessage:bad\n\nthree\0");

        var frames = ParseAll(wire);

        Assert.Equal(["MESSAGE", "RECEIPT", "ERROR"], frames.Select(f => f.Command));
        Assert.Equal("one", frames[0].GetBodyAsString());
        Assert.Equal("r", frames[1].GetHeader("receipt-id"));
        Assert.Equal("three", frames[2].GetBodyAsString());
    }

    [Fact]
    public void A_frame_fed_byte_by_byte_appears_only_when_complete()
    {
        var wire = StompFrameCodec.Encode(new StompFrame(
            "MESSAGE", [new("destination", "/q"), new("esc", "a:b\nc")], new byte[] { 9, 0, 8 }));
        var parser = new StompFrameParser();

        for (var i = 0; i < wire.Length - 1; i++)
        {
            parser.Feed(wire.AsSpan(i, 1));
            Assert.False(parser.TryRead(out _), $"frame reported after {i + 1} of {wire.Length} bytes");
        }

        parser.Feed(wire.AsSpan(wire.Length - 1, 1));
        Assert.True(parser.TryRead(out var frame));
        Assert.Equal("a:b\nc", frame.GetHeader("esc"));
        Assert.Equal(new byte[] { 9, 0, 8 }, frame.Body.ToArray());
        Assert.False(parser.TryRead(out _));
        Assert.Equal(0, parser.BufferedBytes);
    }

    [Fact]
    public void Heartbeat_EOLs_between_frames_are_reported_as_heartbeats()
    {
        var frames = ParseAll(Utf8("\nMESSAGE\n\na\0\r\n\nMESSAGE\n\nb\0\r\n"));

        Assert.Equal(
            ["<hb>", "MESSAGE:a", "<hb>", "<hb>", "MESSAGE:b", "<hb>"],
            frames.Select(f => f.IsHeartbeat ? "<hb>" : $"{f.Command}:{f.GetBodyAsString()}"));
    }

    [Fact]
    public void A_CRLF_heartbeat_split_across_chunks_is_one_heartbeat()
    {
        var parser = new StompFrameParser();

        parser.Feed(Utf8("\r"));
        Assert.False(parser.TryRead(out _));
        parser.Feed(Utf8("\n"));

        Assert.True(parser.TryRead(out var frame));
        Assert.True(frame.IsHeartbeat);
        Assert.False(parser.TryRead(out _));
    }

    [Fact]
    public void CRLF_line_endings_inside_frames_are_accepted()
    {
        var frame = ParseSingle("MESSAGE\r\nfoo:bar\r\ndestination:/q\r\n\r\nbody\0");

        Assert.Equal("bar", frame.GetHeader("foo"));
        Assert.Equal("/q", frame.GetHeader("destination"));
        Assert.Equal("body", frame.GetBodyAsString());
    }

    [Fact]
    public void Repeated_header_first_occurrence_wins_and_all_are_kept_in_order()
    {
        var frame = ParseSingle("MESSAGE\nfoo:first\nfoo:second\n\n\0");

        Assert.Equal("first", frame.GetHeader("foo"));
        Assert.Equal([new("foo", "first"), new("foo", "second")], frame.Headers);
    }

    [Fact]
    public void Repeated_content_length_first_occurrence_wins()
    {
        var frame = ParseSingle("MESSAGE\ncontent-length:3\ncontent-length:1\n\na\0b\0");

        Assert.Equal(new byte[] { (byte)'a', 0, (byte)'b' }, frame.Body.ToArray());
    }

    [Fact]
    public void Header_names_are_case_sensitive()
    {
        var frame = ParseSingle("MESSAGE\nFoo:upper\n\n\0");

        Assert.Null(frame.GetHeader("foo"));
        Assert.Equal("upper", frame.GetHeader("Foo"));
    }

    [Fact]
    public void Undefined_escape_sequence_is_rejected()
    {
        var error = ParseFails("MESSAGE\nfoo:a\\tb\n\n\0");

        Assert.Contains("\\t", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("MESSAGE\nfoo:dangling\\\n\n\0", "backslash")]
    [InlineData("MESSAGE\nno-colon-here\n\n\0", "no ':'")]
    [InlineData("MESSAGE\n:value\n\n\0", "empty header name")]
    [InlineData("MESSAGE\ncontent-length:2\n\nabc\0", "not followed by a NUL")]
    [InlineData("MESSAGE\ncontent-length:two\n\nab\0", "content-length")]
    [InlineData("MESSAGE\ncontent-length:-1\n\n\0", "content-length")]
    [InlineData("\rMESSAGE\n\n\0", "CR not followed by LF")]
    [InlineData("MES SAGE\n\n\0", "command")]
    public void Malformed_frames_are_rejected_with_a_clear_message(string wire, string expected)
    {
        var error = ParseFails(wire);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_UTF8_in_a_header_is_rejected()
    {
        var wire = new byte[] { (byte)'M', (byte)'E', (byte)'S', (byte)'S', (byte)'A', (byte)'G', (byte)'E', 10, (byte)'a', (byte)':', 0xC3, 0x28, 10, 10, 0 };

        Assert.Throws<StompProtocolException>(() => ParseAll(wire));
    }

    [Fact]
    public void A_parser_that_rejected_input_refuses_further_use()
    {
        var parser = new StompFrameParser();
        parser.Feed(Utf8("MESSAGE\nbad\n\n\0"));
        Assert.Throws<StompProtocolException>(() => parser.TryRead(out _));

        Assert.Throws<InvalidOperationException>(() => parser.TryRead(out _));
    }

    [Fact]
    public void Oversized_bodies_and_headers_are_rejected_before_they_are_buffered_whole()
    {
        var bodyLimited = new StompFrameParser(maxBodyBytes: 10);
        bodyLimited.Feed(Utf8("MESSAGE\ncontent-length:11\n\n"));
        Assert.Throws<StompProtocolException>(() => bodyLimited.TryRead(out _));

        var unterminated = new StompFrameParser(maxBodyBytes: 10);
        unterminated.Feed(Utf8("MESSAGE\n\n01234567890"));
        Assert.Throws<StompProtocolException>(() => unterminated.TryRead(out _));

        var headerLimited = new StompFrameParser(maxHeaderBytes: 32);
        headerLimited.Feed(Utf8("MESSAGE\nlong:" + new string('x', 40)));
        Assert.Throws<StompProtocolException>(() => headerLimited.TryRead(out _));
    }

    [Fact]
    public void Large_frames_split_across_chunks_are_reassembled()
    {
        var body = Enumerable.Range(0, 100_000).Select(i => (byte)(i % 251)).ToArray();
        var wire = StompFrameCodec.Encode(new StompFrame("MESSAGE", [new("destination", "/q")], body));
        var parser = new StompFrameParser();
        var frames = new List<StompFrame>();

        for (var offset = 0; offset < wire.Length; offset += 1000)
        {
            parser.Feed(wire.AsSpan(offset, Math.Min(1000, wire.Length - offset)));
            while (parser.TryRead(out var frame))
            {
                frames.Add(frame);
            }
        }

        Assert.Equal(body, Assert.Single(frames).Body.ToArray());
    }
}
