using System.Buffers.Binary;

namespace CmpWaldurAdapter.Capabilities.Voice;

/// <summary>
/// The playing time of an audio file read from its container headers, without decoding, for the formats
/// OpenAI transcribes: WAV (fmt byte rate, data size), FLAC (STREAMINFO), MP3 (Xing/Info or VBRI header, else
/// the frame headers walked), Ogg Vorbis/Opus/FLAC (granule position of the stream's last page), MP4/M4A
/// (mvhd; when fragmented, mehd or else the fragments' sample durations) and WebM (Segment Info Duration × TimecodeScale, else the last block's time,
/// as browser recordings carry no Duration). The container is recognized from the bytes, not the file name.
/// Null means the bytes are none of these or their headers do not tell the duration.
/// </summary>
public static class AudioDuration
{
    /// <summary>How far into an MP3 (after its ID3 tag) the first frame is looked for.</summary>
    private const int Mp3SyncWindow = 64 * 1024;

    public static TimeSpan? Of(ReadOnlySpan<byte> audio)
    {
        // ID3v2 tags precede MP3 frames, and sometimes a FLAC stream.
        var body = audio[Id3Length(audio)..];
        return body switch
        {
            [(byte)'R', (byte)'I', (byte)'F', (byte)'F', _, _, _, _, (byte)'W', (byte)'A', (byte)'V', (byte)'E', ..] => Wav(body),
            [(byte)'f', (byte)'L', (byte)'a', (byte)'C', ..] => Flac(body),
            [(byte)'O', (byte)'g', (byte)'g', (byte)'S', ..] => Ogg(body),
            [_, _, _, _, (byte)'f', (byte)'t', (byte)'y', (byte)'p', ..] => Mp4(body),
            [0x1A, 0x45, 0xDF, 0xA3, ..] => WebM(body),
            _ => Mp3(body),
        };
    }

    /// <summary>PCM WAV: the data chunk's declared size over the fmt chunk's byte rate.</summary>
    internal static TimeSpan? Wav(ReadOnlySpan<byte> wav)
    {
        if (wav.Length < 44 || !wav[..4].SequenceEqual("RIFF"u8) || !wav[8..12].SequenceEqual("WAVE"u8))
        {
            return null;
        }

        uint byteRate = 0;
        for (var offset = 12; offset + 8 <= wav.Length;)
        {
            var id = wav.Slice(offset, 4);
            var size = BinaryPrimitives.ReadUInt32LittleEndian(wav.Slice(offset + 4, 4));
            if (id.SequenceEqual("fmt "u8) && offset + 20 <= wav.Length)
            {
                byteRate = BinaryPrimitives.ReadUInt32LittleEndian(wav.Slice(offset + 16, 4));
            }
            else if (id.SequenceEqual("data"u8))
            {
                return byteRate == 0 ? null : Seconds((double)size / byteRate);
            }

            offset += 8 + (int)Math.Min(size + (size & 1), int.MaxValue - 16);
        }

        return null;
    }

    /// <summary>FLAC: total samples over sample rate from STREAMINFO, the mandatory first metadata block.</summary>
    internal static TimeSpan? Flac(ReadOnlySpan<byte> flac) =>
        flac.Length >= 8 + 34 && flac[..4].SequenceEqual("fLaC"u8) && (flac[4] & 0x7F) == 0 ? StreamInfo(flac.Slice(8, 34)) : null;

    /// <summary>MP3 (MPEG audio layers I–III): the VBR header's frame count, else every frame's samples added up.</summary>
    internal static TimeSpan? Mp3(ReadOnlySpan<byte> mp3)
    {
        var first = NextFrame(mp3, 0, Math.Min(mp3.Length, Mp3SyncWindow));
        if (first < 0)
        {
            return null;
        }

        var frame = MpegFrame.Read(mp3[first..])!.Value;
        // Encoders put a Xing/Info (or Fraunhofer VBRI) header in the first frame: its frame count is exact.
        var xing = first + 4 + frame.SideInfoLength;
        if (xing + 12 <= mp3.Length && (mp3.Slice(xing, 4).SequenceEqual("Xing"u8) || mp3.Slice(xing, 4).SequenceEqual("Info"u8))
            && (BinaryPrimitives.ReadUInt32BigEndian(mp3.Slice(xing + 4, 4)) & 1) != 0)
        {
            return Seconds((double)BinaryPrimitives.ReadUInt32BigEndian(mp3.Slice(xing + 8, 4)) * frame.Samples / frame.SampleRate);
        }

        var vbri = first + 4 + 32;
        if (vbri + 18 <= mp3.Length && mp3.Slice(vbri, 4).SequenceEqual("VBRI"u8))
        {
            return Seconds((double)BinaryPrimitives.ReadUInt32BigEndian(mp3.Slice(vbri + 14, 4)) * frame.Samples / frame.SampleRate);
        }

        double seconds = 0;
        for (var position = first; position >= 0 && position + 4 <= mp3.Length;)
        {
            if (MpegFrame.Read(mp3[position..]) is { } next)
            {
                seconds += (double)next.Samples / next.SampleRate;
                position += next.Length;
            }
            else
            {
                // Lost sync (junk, a trailing ID3v1 or APE tag): on to the next confirmed frame, if any.
                position = NextFrame(mp3, position + 1, mp3.Length);
            }
        }

        return Seconds(seconds);
    }

    /// <summary>Ogg: the last page's granule position of the first stream, in its codec's sample rate (Opus: 48 kHz less pre-skip).</summary>
    internal static TimeSpan? Ogg(ReadOnlySpan<byte> ogg)
    {
        if (ogg.Length < 28 || !ogg[..4].SequenceEqual("OggS"u8) || ogg[4] != 0 || ogg.Length < 27 + ogg[26])
        {
            return null;
        }

        var serial = BinaryPrimitives.ReadUInt32LittleEndian(ogg.Slice(14, 4));
        var lacing = ogg.Slice(27, ogg[26]);
        var length = 0;
        foreach (var segment in lacing)
        {
            length += segment;
            if (segment < 255)
            {
                break;
            }
        }

        var start = 27 + lacing.Length;
        var packet = ogg.Slice(start, Math.Min(length, ogg.Length - start));
        long rate, preSkip = 0;
        if (packet.Length >= 16 && packet[0] == 1 && packet[1..7].SequenceEqual("vorbis"u8))
        {
            rate = BinaryPrimitives.ReadUInt32LittleEndian(packet.Slice(12, 4));
        }
        else if (packet.Length >= 12 && packet[..8].SequenceEqual("OpusHead"u8))
        {
            // Opus granules count 48 kHz samples whatever the input rate; the first pre-skip samples are not played.
            rate = 48_000;
            preSkip = BinaryPrimitives.ReadUInt16LittleEndian(packet.Slice(10, 2));
        }
        else if (packet.Length >= 51 && packet[0] == 0x7F && packet[1..5].SequenceEqual("FLAC"u8) && packet[9..13].SequenceEqual("fLaC"u8))
        {
            var info = packet.Slice(17, 34);
            rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4);
        }
        else
        {
            return null;
        }

        if (rate == 0)
        {
            return null;
        }

        for (var page = ogg.Length - 27; page >= 0; page--)
        {
            if (ogg[page] == (byte)'O' && ogg.Slice(page, 4).SequenceEqual("OggS"u8) && ogg[page + 4] == 0
                && BinaryPrimitives.ReadUInt32LittleEndian(ogg.Slice(page + 14, 4)) == serial)
            {
                var granule = BinaryPrimitives.ReadInt64LittleEndian(ogg.Slice(page + 6, 8));
                if (granule >= 0)
                {
                    return Seconds((double)Math.Max(0, granule - preSkip) / rate);
                }
            }
        }

        return null;
    }

    /// <summary>
    /// MP4/M4A: moov/mvhd duration over its timescale; a fragmented file's moov/mvex/mehd when mvhd has none; else
    /// (what browsers' MediaRecorder writes, Safari's audio/mp4) the end of the audio track's last fragment.
    /// </summary>
    internal static TimeSpan? Mp4(ReadOnlySpan<byte> mp4)
    {
        if (!TryBox(mp4, "moov"u8, out var moov) || !TryBox(moov, "mvhd"u8, out var mvhd) || mvhd.Length < 20)
        {
            return null;
        }

        var longForm = mvhd[0] == 1;
        if (longForm && mvhd.Length < 32)
        {
            return null;
        }

        var timescale = BinaryPrimitives.ReadUInt32BigEndian(mvhd.Slice(longForm ? 20 : 12, 4));
        var duration = longForm ? BinaryPrimitives.ReadUInt64BigEndian(mvhd.Slice(24, 8)) : BinaryPrimitives.ReadUInt32BigEndian(mvhd.Slice(16, 4));
        var unknown = duration == (longForm ? ulong.MaxValue : uint.MaxValue);
        if (duration != 0 && !unknown)
        {
            return timescale == 0 ? null : Seconds((double)duration / timescale);
        }

        if (TryBox(moov, "mvex"u8, out var mvex) && TryBox(mvex, "mehd"u8, out var mehd) && mehd.Length >= 8)
        {
            var mehdLong = mehd[0] == 1 && mehd.Length >= 12;
            duration = mehdLong ? BinaryPrimitives.ReadUInt64BigEndian(mehd.Slice(4, 8)) : BinaryPrimitives.ReadUInt32BigEndian(mehd.Slice(4, 4));
            if (duration != 0 && timescale != 0)
            {
                return Seconds((double)duration / timescale);
            }
        }

        // No duration declared, or an empty mehd (recorders write one before they know the length).
        return FragmentedMp4(mp4, moov);
    }

    /// <summary>
    /// A fragmented MP4 that declares no duration: the audio track's (else the first track's) fragments walked, each
    /// starting at its decode time (tfdt, else where the previous one ended) and lasting its samples' durations (trun,
    /// else tfhd's default, else trex's), over the track's own timescale (mdhd). The first start counts as zero: a
    /// piece cut from a longer stream keeps its original decode times. Null when no fragment has a sample.
    /// </summary>
    private static TimeSpan? FragmentedMp4(ReadOnlySpan<byte> mp4, ReadOnlySpan<byte> moov)
    {
        if (Mp4Track(moov) is not { } track)
        {
            return null;
        }

        ulong? first = null;
        ulong end = 0;
        for (var offset = 0; NextBox(mp4, ref offset, out var type, out var moof);)
        {
            if (!type.SequenceEqual("moof"u8))
            {
                continue;
            }

            for (var at = 0; NextBox(moof, ref at, out var trafType, out var traf);)
            {
                if (!trafType.SequenceEqual("traf"u8) || !TryBox(traf, "tfhd"u8, out var tfhd) || tfhd.Length < 8
                    || BinaryPrimitives.ReadUInt32BigEndian(tfhd.Slice(4, 4)) != track.Id)
                {
                    continue;
                }

                var start = end;
                if (TryBox(traf, "tfdt"u8, out var tfdt) && tfdt.Length >= 8)
                {
                    start = tfdt[0] == 1 && tfdt.Length >= 12 ? BinaryPrimitives.ReadUInt64BigEndian(tfdt.Slice(4, 8)) : BinaryPrimitives.ReadUInt32BigEndian(tfdt.Slice(4, 4));
                }

                if (FragmentLength(traf, tfhd, track.DefaultSampleDuration) is not { } length)
                {
                    return null;
                }

                if (length.Samples > 0)
                {
                    first = Math.Min(first ?? start, start);
                    end = Math.Max(end, Add(start, length.Units));
                }
            }
        }

        return first is { } from && end > from ? Seconds((double)(end - from) / track.Timescale) : null;
    }

    /// <summary>The track whose fragments are timed: the first sound track (hdlr "soun"), else the first one, with its timescale and trex default.</summary>
    private static (uint Id, uint Timescale, uint DefaultSampleDuration)? Mp4Track(ReadOnlySpan<byte> moov)
    {
        (uint Id, uint Timescale)? chosen = null;
        for (var offset = 0; NextBox(moov, ref offset, out var type, out var trak);)
        {
            if (!type.SequenceEqual("trak"u8) || !TryBox(trak, "tkhd"u8, out var tkhd) || !TryBox(trak, "mdia"u8, out var mdia) || !TryBox(mdia, "mdhd"u8, out var mdhd))
            {
                continue;
            }

            var idAt = tkhd.Length > 0 && tkhd[0] == 1 ? 20 : 12;
            var scaleAt = mdhd.Length > 0 && mdhd[0] == 1 ? 20 : 12;
            if (tkhd.Length < idAt + 4 || mdhd.Length < scaleAt + 4 || BinaryPrimitives.ReadUInt32BigEndian(mdhd.Slice(scaleAt, 4)) is not (> 0 and var timescale))
            {
                continue;
            }

            var sound = TryBox(mdia, "hdlr"u8, out var hdlr) && hdlr.Length >= 12 && hdlr.Slice(8, 4).SequenceEqual("soun"u8);
            if (chosen is null || sound)
            {
                chosen = (BinaryPrimitives.ReadUInt32BigEndian(tkhd.Slice(idAt, 4)), timescale);
            }

            if (sound)
            {
                break;
            }
        }

        if (chosen is not { } track)
        {
            return null;
        }

        uint defaultDuration = 0;
        if (TryBox(moov, "mvex"u8, out var mvex))
        {
            for (var offset = 0; NextBox(mvex, ref offset, out var type, out var trex);)
            {
                if (type.SequenceEqual("trex"u8) && trex.Length >= 16 && BinaryPrimitives.ReadUInt32BigEndian(trex.Slice(4, 4)) == track.Id)
                {
                    defaultDuration = BinaryPrimitives.ReadUInt32BigEndian(trex.Slice(12, 4));
                    break;
                }
            }
        }

        return (track.Id, track.Timescale, defaultDuration);
    }

    /// <summary>
    /// One track fragment's samples and their total duration in track units, from its trun boxes; null when a trun
    /// declares more samples than it holds (a corrupt or hostile file).
    /// </summary>
    private static (ulong Samples, ulong Units)? FragmentLength(ReadOnlySpan<byte> traf, ReadOnlySpan<byte> tfhd, uint trexDefault)
    {
        var tfhdFlags = BinaryPrimitives.ReadUInt32BigEndian(tfhd[..4]) & 0xFFFFFF;
        var defaultDuration = trexDefault;
        if ((tfhdFlags & 0x08) != 0)
        {
            // tfhd: track_ID, then base_data_offset (8 bytes) and sample_description_index (4) when flagged.
            var at = 8 + ((tfhdFlags & 0x01) != 0 ? 8 : 0) + ((tfhdFlags & 0x02) != 0 ? 4 : 0);
            if (tfhd.Length < at + 4)
            {
                return null;
            }

            defaultDuration = BinaryPrimitives.ReadUInt32BigEndian(tfhd.Slice(at, 4));
        }

        ulong samples = 0, units = 0;
        for (var offset = 0; NextBox(traf, ref offset, out var type, out var trun);)
        {
            if (!type.SequenceEqual("trun"u8))
            {
                continue;
            }

            if (trun.Length < 8)
            {
                return null;
            }

            var flags = BinaryPrimitives.ReadUInt32BigEndian(trun[..4]) & 0xFFFFFF;
            var count = BinaryPrimitives.ReadUInt32BigEndian(trun.Slice(4, 4));
            var first = 8 + ((flags & 0x01) != 0 ? 4 : 0) + ((flags & 0x04) != 0 ? 4 : 0);
            // Per sample: duration, size, flags, composition offset, each 4 bytes when flagged.
            var entry = 4 * (int)System.Numerics.BitOperations.PopCount(flags & 0xF00);
            if ((ulong)first + (ulong)entry * count > (ulong)trun.Length)
            {
                return null;
            }

            samples += count;
            if ((flags & 0x100) == 0)
            {
                units = Add(units, (ulong)count * defaultDuration);
                continue;
            }

            for (var i = 0; i < count; i++)
            {
                units = Add(units, BinaryPrimitives.ReadUInt32BigEndian(trun.Slice(first + i * entry, 4)));
            }
        }

        return (samples, units);
    }

    /// <summary>
    /// WebM (Matroska): Segment/Info Duration × TimecodeScale (ns). Without a Duration (recorders write none),
    /// the start of the last block: its cluster's timecode plus its own relative timecode.
    /// </summary>
    internal static TimeSpan? WebM(ReadOnlySpan<byte> webm)
    {
        const uint Ebml = 0x1A45DFA3, Segment = 0x18538067, Info = 0x1549A966, TimecodeScale = 0x2AD7B1, Duration = 0x4489;
        const uint Cluster = 0x1F43B675, Timecode = 0xE7, BlockGroup = 0xA0, Block = 0xA1, SimpleBlock = 0xA3;
        var position = 0;
        if (ReadId(webm, ref position) != Ebml || ReadSize(webm, ref position) is not { } header || header < 0)
        {
            return null;
        }

        position += (int)Math.Min(header, webm.Length);
        ulong scale = 1_000_000;
        double? duration = null;
        ulong cluster = 0;
        long last = -1;
        // One flat walk: the containers that matter (Segment, Info, Cluster, BlockGroup) are entered, others skipped;
        // clusters of unknown size simply end where the next cluster begins.
        while (position < webm.Length)
        {
            if (ReadId(webm, ref position) is not { } id || ReadSize(webm, ref position) is not { } size)
            {
                break;
            }

            if (id is Segment or Info or Cluster or BlockGroup)
            {
                if (id == Cluster && duration is not null)
                {
                    break; // Info comes before the clusters: its Duration is all that is needed.
                }

                continue;
            }

            if (size < 0 || size > webm.Length - position)
            {
                break;
            }

            var content = webm.Slice(position, (int)size);
            position += (int)size;
            switch (id)
            {
                case TimecodeScale when Unsigned(content) is { } value and > 0:
                    scale = value;
                    break;
                case Duration when content.Length == 4:
                    duration = BinaryPrimitives.ReadSingleBigEndian(content);
                    break;
                case Duration when content.Length == 8:
                    duration = BinaryPrimitives.ReadDoubleBigEndian(content);
                    break;
                case Timecode when Unsigned(content) is { } value:
                    cluster = value;
                    break;
                case SimpleBlock or Block:
                    var inBlock = 0;
                    if (ReadSize(content, ref inBlock) is not null && inBlock + 2 <= content.Length)
                    {
                        last = Math.Max(last, (long)cluster + BinaryPrimitives.ReadInt16BigEndian(content.Slice(inBlock, 2)));
                    }

                    break;
            }
        }

        var units = duration ?? (last >= 0 ? last : null);
        return units is { } length && double.IsFinite(length) ? Seconds(length * scale / 1e9) : null;
    }

    /// <summary>The length of the ID3v2 tags at the start (0 if none).</summary>
    private static int Id3Length(ReadOnlySpan<byte> audio)
    {
        var offset = 0;
        while (audio.Length - offset >= 10 && audio.Slice(offset, 3).SequenceEqual("ID3"u8) && audio[offset + 3] < 0xFF && audio[offset + 4] < 0xFF
            && (audio[offset + 6] | audio[offset + 7] | audio[offset + 8] | audio[offset + 9]) < 0x80)
        {
            var size = (audio[offset + 6] << 21) | (audio[offset + 7] << 14) | (audio[offset + 8] << 7) | audio[offset + 9];
            offset = (int)Math.Min(audio.Length, (long)offset + 10 + size + ((audio[offset + 5] & 0x10) != 0 ? 10 : 0));
        }

        return offset;
    }

    private static TimeSpan? StreamInfo(ReadOnlySpan<byte> info)
    {
        var rate = (info[10] << 12) | (info[11] << 4) | (info[12] >> 4);
        var samples = ((long)(info[13] & 0x0F) << 32) | BinaryPrimitives.ReadUInt32BigEndian(info.Slice(14, 4));
        return rate == 0 || samples == 0 ? null : Seconds((double)samples / rate); // 0 samples: the encoder did not know
    }

    /// <summary>
    /// The first MPEG frame at or after <paramref name="from"/> (before <paramref name="until"/>) that another frame
    /// follows or that ends the file: two headers in a row, so stray 0xFF bytes are not taken for one. -1 if none.
    /// </summary>
    private static int NextFrame(ReadOnlySpan<byte> mp3, int from, int until)
    {
        for (var position = mp3[from..].IndexOf((byte)0xFF); position >= 0 && from + position < until; position = NextSync(mp3, from, position))
        {
            var at = from + position;
            if (MpegFrame.Read(mp3[at..]) is { } frame && (at + frame.Length == mp3.Length || (at + frame.Length < mp3.Length && MpegFrame.Read(mp3[(at + frame.Length)..]) is not null)))
            {
                return at;
            }
        }

        return -1;
    }

    private static int NextSync(ReadOnlySpan<byte> mp3, int from, int position)
    {
        var next = mp3[(from + position + 1)..].IndexOf((byte)0xFF);
        return next < 0 ? -1 : position + 1 + next;
    }

    /// <summary>The payload of the first box of <paramref name="type"/> among the boxes that make up <paramref name="boxes"/>.</summary>
    private static bool TryBox(ReadOnlySpan<byte> boxes, ReadOnlySpan<byte> type, out ReadOnlySpan<byte> payload)
    {
        for (var offset = 0; NextBox(boxes, ref offset, out var found, out payload);)
        {
            if (found.SequenceEqual(type))
            {
                return true;
            }
        }

        payload = default;
        return false;
    }

    /// <summary>The box at <paramref name="offset"/> (its type and payload, cut at the end of the data), moving past it; false at the end or at a broken size.</summary>
    private static bool NextBox(ReadOnlySpan<byte> boxes, scoped ref int offset, out ReadOnlySpan<byte> type, out ReadOnlySpan<byte> payload)
    {
        type = payload = default;
        if (offset + 8 > boxes.Length)
        {
            return false;
        }

        long size = BinaryPrimitives.ReadUInt32BigEndian(boxes.Slice(offset, 4));
        var header = 8;
        if (size == 1 && offset + 16 <= boxes.Length)
        {
            size = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(boxes.Slice(offset + 8, 8)), int.MaxValue);
            header = 16;
        }
        else if (size == 0)
        {
            size = boxes.Length - offset; // to the end
        }

        if (size < header)
        {
            return false;
        }

        var end = (int)Math.Min(boxes.Length, offset + size);
        type = boxes.Slice(offset + 4, 4);
        payload = boxes[(offset + header)..end];
        offset = end;
        return true;
    }

    /// <summary>An EBML element id (its length marker kept, as ids are written), or null past the end or for an invalid one.</summary>
    private static uint? ReadId(ReadOnlySpan<byte> data, ref int position)
    {
        if (position >= data.Length || data[position] == 0)
        {
            return null;
        }

        var length = System.Numerics.BitOperations.LeadingZeroCount((uint)data[position]) - 23;
        if (length > 4 || position + length > data.Length)
        {
            return null;
        }

        uint id = 0;
        foreach (var b in data.Slice(position, length))
        {
            id = (id << 8) | b;
        }

        position += length;
        return id;
    }

    /// <summary>An EBML data size (length marker removed); -1 for "unknown"; null past the end or for an invalid one.</summary>
    private static long? ReadSize(ReadOnlySpan<byte> data, ref int position)
    {
        if (position >= data.Length || data[position] == 0)
        {
            return null;
        }

        var length = System.Numerics.BitOperations.LeadingZeroCount((uint)data[position]) - 23;
        if (position + length > data.Length)
        {
            return null;
        }

        var value = (long)(data[position] & (0xFF >> length));
        var allOnes = value == 0xFF >> length;
        foreach (var b in data.Slice(position + 1, length - 1))
        {
            value = (value << 8) | b;
            allOnes &= b == 0xFF;
        }

        position += length;
        return allOnes ? -1 : value;
    }

    private static ulong? Unsigned(ReadOnlySpan<byte> content)
    {
        if (content.Length is 0 or > 8)
        {
            return null;
        }

        ulong value = 0;
        foreach (var b in content)
        {
            value = (value << 8) | b;
        }

        return value;
    }

    /// <summary>A sum that stops at the largest value instead of wrapping (a hostile file's counts must not make it short).</summary>
    private static ulong Add(ulong a, ulong b) => a > ulong.MaxValue - b ? ulong.MaxValue : a + b;

    /// <summary>A duration from seconds; absurdly long ones (corrupt headers included) are the longest there is.</summary>
    private static TimeSpan? Seconds(double seconds) =>
        double.IsNaN(seconds) || seconds < 0 ? null : seconds >= TimeSpan.MaxValue.TotalSeconds / 2 ? TimeSpan.MaxValue : TimeSpan.FromSeconds(seconds);

    /// <summary>One MPEG audio frame header: its length in bytes, samples, sample rate and the side information that precedes a Xing header.</summary>
    private readonly record struct MpegFrame(int Length, int Samples, int SampleRate, int SideInfoLength)
    {
        private static readonly int[] Mpeg1Layer1 = [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448];
        private static readonly int[] Mpeg1Layer2 = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384];
        private static readonly int[] Mpeg1Layer3 = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
        private static readonly int[] Mpeg2Layer1 = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256];
        private static readonly int[] Mpeg2Layer23 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

        public static MpegFrame? Read(ReadOnlySpan<byte> header)
        {
            if (header.Length < 4 || header[0] != 0xFF || (header[1] & 0xE0) != 0xE0)
            {
                return null;
            }

            var version = (header[1] >> 3) & 3; // 0: MPEG 2.5, 2: MPEG 2, 3: MPEG 1
            var layer = 4 - ((header[1] >> 1) & 3); // the bits count down: 3 is layer I
            var bitrateIndex = header[2] >> 4;
            var rateIndex = (header[2] >> 2) & 3;
            if (version == 1 || layer == 4 || bitrateIndex is 0 or 15 || rateIndex == 3)
            {
                return null; // reserved values, or free format (no bitrate to size the frame by)
            }

            var mpeg1 = version == 3;
            var sampleRate = (rateIndex switch { 0 => 44_100, 1 => 48_000, _ => 32_000 }) >> (mpeg1 ? 0 : version == 2 ? 1 : 2);
            var bitrate = 1000 * (mpeg1 ? layer switch { 1 => Mpeg1Layer1, 2 => Mpeg1Layer2, _ => Mpeg1Layer3 } : layer == 1 ? Mpeg2Layer1 : Mpeg2Layer23)[bitrateIndex];
            var padding = (header[2] >> 1) & 1;
            var samples = layer switch { 1 => 384, 2 => 1152, _ => mpeg1 ? 1152 : 576 };
            var length = layer == 1 ? ((12 * bitrate / sampleRate) + padding) * 4 : (samples / 8 * bitrate / sampleRate) + padding;
            var mono = header[3] >> 6 == 3;
            var sideInfo = layer != 3 ? 0 : mpeg1 ? (mono ? 17 : 32) : (mono ? 9 : 17);
            return new MpegFrame(length, samples, sampleRate, sideInfo);
        }
    }
}
