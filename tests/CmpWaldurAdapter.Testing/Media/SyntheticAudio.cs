using System.Buffers.Binary;
using System.Text;

namespace CmpWaldurAdapter.Testing.Media;

/// <summary>
/// Minimal audio files built from their container headers only (no codec data): enough for anything that reads
/// a duration from the headers, which is all the adapter does before the audio reaches the flow.
/// </summary>
public static class SyntheticAudio
{
    /// <summary>A PCM WAV (16 kHz mono 16-bit) whose header declares <paramref name="seconds"/>, carrying <paramref name="bytes"/> bytes.</summary>
    public static byte[] Wav(double seconds, int bytes = 320)
    {
        const int byteRate = 16000 * 2;
        var declared = (uint)(seconds * byteRate);
        var wav = new byte[44 + bytes];
        "RIFF"u8.CopyTo(wav);
        BinaryPrimitives.WriteUInt32LittleEndian(wav.AsSpan(4), 36 + declared);
        "WAVEfmt "u8.CopyTo(wav.AsSpan(8));
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(16), 16);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(20), 1);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(22), 1);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(24), 16000);
        BinaryPrimitives.WriteInt32LittleEndian(wav.AsSpan(28), byteRate);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(32), 2);
        BinaryPrimitives.WriteInt16LittleEndian(wav.AsSpan(34), 16);
        "data"u8.CopyTo(wav.AsSpan(36));
        BinaryPrimitives.WriteUInt32LittleEndian(wav.AsSpan(40), declared);
        return wav;
    }

    /// <summary>"fLaC" and a STREAMINFO block (stereo, 16 bit) declaring <paramref name="totalSamples"/> at <paramref name="sampleRate"/>.</summary>
    public static byte[] Flac(int sampleRate, long totalSamples)
    {
        var flac = new byte[8 + 34];
        "fLaC"u8.CopyTo(flac);
        flac[4] = 0x80; // last metadata block, type 0 (STREAMINFO)
        flac[7] = 34;
        var info = flac.AsSpan(8);
        BinaryPrimitives.WriteUInt16BigEndian(info, 4096);
        BinaryPrimitives.WriteUInt16BigEndian(info[2..], 4096);
        const int channels = 2, bits = 16;
        info[10] = (byte)(sampleRate >> 12);
        info[11] = (byte)(sampleRate >> 4);
        info[12] = (byte)(((sampleRate & 0xF) << 4) | ((channels - 1) << 1) | ((bits - 1) >> 4));
        info[13] = (byte)((((bits - 1) & 0xF) << 4) | (int)((totalSamples >> 32) & 0xF));
        BinaryPrimitives.WriteUInt32BigEndian(info[14..], (uint)totalSamples);
        return flac;
    }

    /// <summary>An ID3v2.4 tag of <paramref name="size"/> bytes of frames, as it precedes MP3 (and sometimes FLAC) audio.</summary>
    public static byte[] Id3(int size)
    {
        var tag = new byte[10 + size];
        "ID3"u8.CopyTo(tag);
        tag[3] = 4;
        tag[6] = (byte)((size >> 21) & 0x7F);
        tag[7] = (byte)((size >> 14) & 0x7F);
        tag[8] = (byte)((size >> 7) & 0x7F);
        tag[9] = (byte)(size & 0x7F);
        return tag;
    }

    /// <summary>MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, stereo, no padding: 417 bytes and 1152 samples a frame.</summary>
    public static readonly byte[] Mpeg1Layer3Header = [0xFF, 0xFB, 0x90, 0x00];

    /// <summary>MPEG-2 Layer III, 64 kbit/s, 22.05 kHz, mono: 208 bytes and 576 samples a frame.</summary>
    public static readonly byte[] Mpeg2Layer3MonoHeader = [0xFF, 0xF3, 0x80, 0xC0];

    /// <summary><paramref name="count"/> frames of the header, each filled with zeros to its length.</summary>
    public static byte[] Mp3Frames(byte[] header, int count)
    {
        var length = header[1] == 0xFB ? 417 : 208;
        var frames = new byte[length * count];
        for (var i = 0; i < count; i++)
        {
            header.CopyTo(frames, i * length);
        }

        return frames;
    }

    /// <summary>A first frame carrying a Xing (or "Info") header with <paramref name="frames"/> frames, then two plain frames.</summary>
    public static byte[] Mp3WithXing(byte[] header, uint frames, string tag = "Xing")
    {
        var audio = Mp3Frames(header, 3);
        var sideInfo = header[1] == 0xFB ? 32 : 9; // MPEG-1 stereo / MPEG-2 mono
        Encoding.ASCII.GetBytes(tag).CopyTo(audio, 4 + sideInfo);
        BinaryPrimitives.WriteUInt32BigEndian(audio.AsSpan(4 + sideInfo + 4), 1); // flags: frame count present
        BinaryPrimitives.WriteUInt32BigEndian(audio.AsSpan(4 + sideInfo + 8), frames);
        return audio;
    }

    /// <summary>A first frame carrying a Fraunhofer VBRI header with <paramref name="frames"/> frames, then two plain frames.</summary>
    public static byte[] Mp3WithVbri(uint frames)
    {
        var audio = Mp3Frames(Mpeg1Layer3Header, 3);
        "VBRI"u8.CopyTo(audio.AsSpan(36));
        BinaryPrimitives.WriteUInt16BigEndian(audio.AsSpan(40), 1);
        BinaryPrimitives.WriteUInt32BigEndian(audio.AsSpan(46), (uint)audio.Length);
        BinaryPrimitives.WriteUInt32BigEndian(audio.AsSpan(50), frames);
        return audio;
    }

    /// <summary>One Ogg page holding one packet (CRC left zero: readers of durations do not check it).</summary>
    public static byte[] OggPage(uint serial, uint sequence, long granule, byte[] packet, byte type = 0)
    {
        var lacing = new List<byte>();
        var left = packet.Length;
        while (left >= 255)
        {
            lacing.Add(255);
            left -= 255;
        }

        lacing.Add((byte)left);
        var page = new byte[27 + lacing.Count + packet.Length];
        "OggS"u8.CopyTo(page);
        page[5] = type;
        BinaryPrimitives.WriteInt64LittleEndian(page.AsSpan(6), granule);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(14), serial);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(18), sequence);
        page[26] = (byte)lacing.Count;
        lacing.ToArray().CopyTo(page, 27);
        packet.CopyTo(page, 27 + lacing.Count);
        return page;
    }

    /// <summary>The OpusHead identification packet (mono, input rate 16 kHz); <paramref name="leadingSamples"/> is its pre-skip.</summary>
    public static byte[] OpusHead(ushort leadingSamples)
    {
        var head = new byte[19];
        "OpusHead"u8.CopyTo(head);
        head[8] = 1;
        head[9] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(10), leadingSamples);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(12), 16000);
        return head;
    }

    /// <summary>The Vorbis identification packet (stereo) at <paramref name="sampleRate"/>.</summary>
    public static byte[] VorbisHead(uint sampleRate)
    {
        var head = new byte[30];
        head[0] = 1;
        "vorbis"u8.CopyTo(head.AsSpan(1));
        head[11] = 2;
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(12), sampleRate);
        head[28] = 0xB8;
        head[29] = 1;
        return head;
    }

    /// <summary>An Ogg Opus file (head, tags, audio pages) whose last page's granule is <paramref name="seconds"/> of 48 kHz samples after the pre-skip.</summary>
    public static byte[] OggOpus(double seconds, ushort leadingSamples = 312) =>
        [
            .. OggPage(7, 0, 0, OpusHead(leadingSamples), type: 2),
            .. OggPage(7, 1, 0, [.. "OpusTags"u8, 0, 0, 0, 0, 0, 0, 0, 0]),
            .. OggPage(7, 2, leadingSamples + (long)(seconds * 48_000 / 2), new byte[100]),
            .. OggPage(7, 3, leadingSamples + (long)(seconds * 48_000), new byte[100], type: 4),
        ];

    /// <summary>An ISO BMFF box.</summary>
    public static byte[] Box(string type, params byte[][] content)
    {
        var payload = content.SelectMany(c => c).ToArray();
        var box = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(box, (uint)box.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(box, 4);
        payload.CopyTo(box, 8);
        return box;
    }

    /// <summary>An mvhd box (version 0 or 1) declaring <paramref name="duration"/> in units of <paramref name="timescale"/> per second.</summary>
    public static byte[] Mvhd(uint timescale, ulong duration, byte version = 0)
    {
        var body = new byte[version == 1 ? 112 : 100];
        body[0] = version;
        if (version == 1)
        {
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(20), timescale);
            BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(24), duration);
        }
        else
        {
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(12), timescale);
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(16), (uint)duration);
        }

        return Box("mvhd", body);
    }

    /// <summary>An M4A: ftyp, mdat, then moov with the given boxes (mvhd, mvex…).</summary>
    public static byte[] M4a(params byte[][] moov) =>
        [.. Box("ftyp", "M4A "u8.ToArray(), new byte[4], "M4A isom"u8.ToArray()), .. Box("mdat", new byte[64]), .. Box("moov", moov)];

    /// <summary>A full box's payload: version, 24-bit flags, then the fields (each a big-endian uint32).</summary>
    public static byte[] FullBox(string type, byte version, uint flags, params uint[] fields)
    {
        var body = new byte[4 + (4 * fields.Length)];
        BinaryPrimitives.WriteUInt32BigEndian(body, ((uint)version << 24) | (flags & 0xFFFFFF));
        for (var i = 0; i < fields.Length; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(body.AsSpan(4 + (4 * i)), fields[i]);
        }

        return Box(type, body);
    }

    /// <summary>
    /// A trak of <paramref name="handler"/> ("soun", "vide") with its id and its own timescale (mdhd). Version 1 tkhd
    /// and mdhd carry 64-bit creation and modification times (here past 2040, which 32 bits cannot count since 1904).
    /// </summary>
    public static byte[] Trak(uint id, uint timescale, string handler = "soun", byte version = 0)
    {
        var created = 4_575_000_000UL; // seconds since 1904: 2049
        uint[] times = version == 1 ? [(uint)(created >> 32), (uint)created, (uint)(created >> 32), (uint)created + 60] : [0, 0];
        uint[] duration = version == 1 ? [0, 0] : [0];
        return Box("trak",
            FullBox("tkhd", version, 3, [.. times, id, 0, .. duration]),
            Box("mdia",
                FullBox("mdhd", version, 0, [.. times, timescale, .. duration, 0]),
                Box("hdlr", new byte[4], new byte[4], Encoding.ASCII.GetBytes(handler), new byte[12])));
    }

    /// <summary>A trex: the default sample duration of a track's fragments.</summary>
    public static byte[] Trex(uint track, uint defaultSampleDuration) => FullBox("trex", 0, 0, track, 1, defaultSampleDuration, 0, 0);

    /// <summary>
    /// A moof with one traf for <paramref name="track"/>: tfhd (with a default sample duration when given, after the
    /// base data offset and sample description index when given), tfdt (when given, 64-bit unless
    /// <paramref name="decodeTimeVersion"/> is 0) and a trun of the given per-sample durations, or of
    /// <paramref name="count"/> samples without durations, with the first sample's flags when given; each sample also
    /// carries a size, as recorders write, unless <paramref name="sizes"/> is false.
    /// </summary>
    public static byte[] Moof(
        uint track, uint[]? durations = null, uint count = 0, uint? defaultDuration = null, ulong? decodeTime = null, bool sizes = true,
        byte decodeTimeVersion = 1, ulong? baseDataOffset = null, uint? sampleDescription = null, uint? firstSampleFlags = null)
    {
        var tfhdFlags = 0x020000u | (baseDataOffset is null ? 0 : 0x01u) | (sampleDescription is null ? 0 : 0x02u) | (defaultDuration is null ? 0 : 0x08u);
        uint[] offset = baseDataOffset is { } o ? [(uint)(o >> 32), (uint)o] : [];
        uint[] description = sampleDescription is { } i ? [i] : [];
        uint[] sampleDuration = defaultDuration is { } d ? [d] : [];
        var tfhd = FullBox("tfhd", 0, tfhdFlags, [track, .. offset, .. description, .. sampleDuration]);
        byte[] tfdt = decodeTime is { } t ? decodeTimeVersion == 1 ? FullBox("tfdt", 1, 0, (uint)(t >> 32), (uint)t) : FullBox("tfdt", 0, 0, checked((uint)t)) : [];
        // trun: sample count, data offset, then the first sample's flags when given.
        var firstFlag = firstSampleFlags is null ? 0 : 0x000004u;
        uint[] head = firstSampleFlags is { } f ? [0, f] : [0];
        var trun = durations is null
            ? sizes ? FullBox("trun", 0, 0x000201 | firstFlag, [count, .. head, .. Enumerable.Repeat(100u, (int)count)]) : FullBox("trun", 0, 0x000001 | firstFlag, [count, .. head])
            : FullBox("trun", 0, 0x000301 | firstFlag, [(uint)durations.Length, .. head, .. durations.SelectMany(x => new[] { x, 100u })]);
        return Box("moof", FullBox("mfhd", 0, 0, 1), Box("traf", tfhd, tfdt, trun));
    }

    /// <summary>A recording as Safari's MediaRecorder writes it (fragmented, no declared duration) of 48 kHz audio in 20 ms frames, one fragment per 100 s.</summary>
    public static byte[] RecordedM4a(int seconds) =>
        FragmentedM4a(
            [Trak(1, 48_000), Box("mvex", Trex(1, 960))],
            [.. Enumerable.Range(0, (seconds + 99) / 100).Select(f => Moof(1, count: (uint)(Math.Min(100, seconds - (f * 100)) * 50), decodeTime: (ulong)f * 100 * 48_000, sizes: false))]);

    /// <summary>A fragmented M4A as browsers record it: a moov that declares no duration, then fragments, each with its mdat.</summary>
    public static byte[] FragmentedM4a(byte[][] moov, params byte[][] fragments) =>
        [
            .. Box("ftyp", "iso5"u8.ToArray(), new byte[4], "iso5iso6mp41"u8.ToArray()),
            .. Box("moov", [Mvhd(1000, 0), .. moov]),
            .. fragments.SelectMany(f => (byte[])[.. f, .. Box("mdat", new byte[32])]),
        ];

    /// <summary>An EBML element; <paramref name="unknownSize"/> writes the "size unknown" value live recorders use.</summary>
    public static byte[] Ebml(uint id, byte[] payload, bool unknownSize = false)
    {
        var idBytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(idBytes, id);
        var idLength = id > 0xFFFFFF ? 4 : id > 0xFFFF ? 3 : id > 0xFF ? 2 : 1;
        byte[] size = unknownSize
            ? [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
            : payload.Length < 127 ? [(byte)(0x80 | payload.Length)] : [0x01, 0, 0, 0, (byte)(payload.Length >> 24), (byte)(payload.Length >> 16), (byte)(payload.Length >> 8), (byte)payload.Length];
        return [.. idBytes[(4 - idLength)..], .. size, .. payload];
    }

    public static byte[] EbmlUnsigned(uint id, ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return Ebml(id, bytes[Math.Min(7, (int)ulong.LeadingZeroCount(value) / 8)..]);
    }

    public static byte[] EbmlFloat(uint id, double value, bool single = false)
    {
        var bytes = new byte[single ? 4 : 8];
        if (single)
        {
            BinaryPrimitives.WriteSingleBigEndian(bytes, (float)value);
        }
        else
        {
            BinaryPrimitives.WriteDoubleBigEndian(bytes, value);
        }

        return Ebml(id, bytes);
    }

    /// <summary>A SimpleBlock of track 1 at <paramref name="relative"/> timecode units after its cluster's timecode.</summary>
    public static byte[] SimpleBlock(short relative)
    {
        var block = new byte[4 + 8];
        block[0] = 0x81; // track 1
        BinaryPrimitives.WriteInt16BigEndian(block.AsSpan(1), relative);
        block[3] = 0x80; // keyframe
        return Ebml(0xA3, block);
    }

    /// <summary>The EBML header of a WebM file.</summary>
    public static byte[] WebMHeader() =>
        Ebml(0x1A45DFA3, [.. EbmlUnsigned(0x4286, 1), .. Ebml(0x4282, "webm"u8.ToArray()), .. EbmlUnsigned(0x4287, 4), .. EbmlUnsigned(0x4285, 2)]);

    /// <summary>A WebM whose Segment Info declares <paramref name="milliseconds"/> (TimecodeScale 1 ms), with one cluster.</summary>
    public static byte[] WebM(double milliseconds) =>
        [
            .. WebMHeader(),
            .. Ebml(0x18538067,
            [
                .. Ebml(0x1549A966, [.. EbmlUnsigned(0x2AD7B1, 1_000_000), .. EbmlFloat(0x4489, milliseconds), .. Ebml(0x4D80, "test"u8.ToArray())]),
                .. Ebml(0x1654AE6B, Ebml(0xAE, [.. EbmlUnsigned(0xD7, 1), .. Ebml(0x86, "A_OPUS"u8.ToArray())])),
                .. Ebml(0x1F43B675, [.. EbmlUnsigned(0xE7, 0), .. SimpleBlock(0)]),
            ]),
        ];

    /// <summary>
    /// A WebM as a browser's MediaRecorder writes it: Segment and clusters of unknown size, no Duration; its last
    /// block starts at <paramref name="lastClusterMs"/> + <paramref name="lastBlockMs"/>.
    /// </summary>
    public static byte[] RecordedWebM(ulong lastClusterMs, short lastBlockMs) =>
        [
            .. WebMHeader(),
            .. Ebml(0x18538067,
            [
                .. Ebml(0x1549A966, [.. EbmlUnsigned(0x2AD7B1, 1_000_000), .. Ebml(0x4D80, "Chrome"u8.ToArray())]),
                .. Ebml(0x1654AE6B, Ebml(0xAE, [.. EbmlUnsigned(0xD7, 1), .. Ebml(0x86, "A_OPUS"u8.ToArray())])),
                .. Ebml(0x1F43B675, [.. EbmlUnsigned(0xE7, 0), .. SimpleBlock(0), .. SimpleBlock(20), .. SimpleBlock(40)], unknownSize: true),
                .. Ebml(0x1F43B675, [.. EbmlUnsigned(0xE7, lastClusterMs), .. SimpleBlock(0), .. Ebml(0xA0, Ebml(0xA1, [0x81, (byte)(lastBlockMs >> 8), (byte)lastBlockMs, 0x00, 0, 0]))], unknownSize: true),
            ], unknownSize: true),
        ];
}
