using System.Buffers.Binary;
using CmpWaldurAdapter.Capabilities.Voice;
using static CmpWaldurAdapter.Testing.Media.SyntheticAudio;

namespace CmpWaldurAdapter.UnitTests.Capabilities;

/// <summary>Durations read from synthetic container headers, each recognized by its bytes (the file name plays no part).</summary>
public sealed class AudioDurationTests
{
    private static void AssertSeconds(double expected, TimeSpan? actual)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected, actual.Value.TotalSeconds, precision: 3);
    }

    [Fact]
    public void Wav_is_the_data_size_over_the_byte_rate()
    {
        AssertSeconds(90, AudioDuration.Of(Wav(90)));
        AssertSeconds(0.25, AudioDuration.Of(Wav(0.25)));
    }

    [Fact]
    public void Wav_without_a_byte_rate_tells_nothing()
    {
        var wav = Wav(10);
        wav.AsSpan(28, 4).Clear();

        Assert.Null(AudioDuration.Of(wav));
    }

    [Fact]
    public void Flac_is_streaminfo_total_samples_over_sample_rate()
    {
        AssertSeconds(125, AudioDuration.Of(Flac(44_100, 44_100L * 125)));
        // 36-bit sample counts: more than 2^32 samples (a day at 48 kHz).
        AssertSeconds(100_000, AudioDuration.Of(Flac(48_000, 48_000L * 100_000)));
        // An ID3 tag in front of the stream is skipped.
        AssertSeconds(2, AudioDuration.Of([.. Id3(300), .. Flac(16_000, 32_000)]));
    }

    [Fact]
    public void Flac_whose_encoder_did_not_know_the_length_tells_nothing()
    {
        Assert.Null(AudioDuration.Of(Flac(44_100, 0)));
        Assert.Null(AudioDuration.Of(Flac(0, 1000)));
    }

    [Fact]
    public void Mp3_with_a_xing_or_info_header_is_its_frame_count()
    {
        AssertSeconds(10_000 * 1152 / 44_100.0, AudioDuration.Of(Mp3WithXing(Mpeg1Layer3Header, 10_000)));
        AssertSeconds(10_000 * 1152 / 44_100.0, AudioDuration.Of([.. Id3(1000), .. Mp3WithXing(Mpeg1Layer3Header, 10_000, "Info")]));
        // MPEG-2 mono: 576 samples a frame, a shorter side information before the header.
        AssertSeconds(1000 * 576 / 22_050.0, AudioDuration.Of(Mp3WithXing(Mpeg2Layer3MonoHeader, 1000)));
    }

    [Fact]
    public void Mp3_with_a_vbri_header_is_its_frame_count()
    {
        AssertSeconds(5000 * 1152 / 44_100.0, AudioDuration.Of(Mp3WithVbri(5000)));
    }

    [Fact]
    public void Mp3_without_a_vbr_header_adds_up_its_frames()
    {
        AssertSeconds(100 * 1152 / 44_100.0, AudioDuration.Of(Mp3Frames(Mpeg1Layer3Header, 100)));
        AssertSeconds(40 * 576 / 22_050.0, AudioDuration.Of(Mp3Frames(Mpeg2Layer3MonoHeader, 40)));
        // An ID3v2 tag in front, padding before the first frame, junk and an ID3v1 tag at the end.
        byte[] tagged = [.. Id3(2000), 0, 0, 0, .. Mp3Frames(Mpeg1Layer3Header, 30), .. "garbage"u8, .. Mp3Frames(Mpeg1Layer3Header, 20), .. "TAG"u8, .. new byte[125]];
        AssertSeconds(50 * 1152 / 44_100.0, AudioDuration.Of(tagged));
    }

    [Fact]
    public void Bytes_that_merely_contain_a_frame_sync_are_not_mp3()
    {
        Assert.Null(AudioDuration.Of("This is a text file, not audio at all."u8));
        Assert.Null(AudioDuration.Of([0xFF, 0xFB, 0x90, 0x00, 1, 2, 3, 0xFF, 0xFF]));
        Assert.Null(AudioDuration.Of([.. Id3(100)]));
        Assert.Null(AudioDuration.Of([]));
    }

    [Fact]
    public void Ogg_opus_is_the_last_granule_at_48_khz_less_the_pre_skip()
    {
        AssertSeconds(60, AudioDuration.Of(OggOpus(60)));
        AssertSeconds(1.5, AudioDuration.Of(OggOpus(1.5, leadingSamples: 3840)));
    }

    [Fact]
    public void Ogg_vorbis_is_the_last_granule_at_the_streams_sample_rate()
    {
        byte[] vorbis =
        [
            .. OggPage(1, 0, 0, VorbisHead(44_100), type: 2),
            .. OggPage(1, 1, 44_100 * 45, new byte[300]),
            .. OggPage(1, 2, 44_100 * 90, new byte[300]),
            // A page on which no packet ends (granule -1) and another stream's later page do not count.
            .. OggPage(1, 3, -1, new byte[10]),
            .. OggPage(2, 0, 44_100 * 500, new byte[10]),
        ];

        AssertSeconds(90, AudioDuration.Of(vorbis));
    }

    [Fact]
    public void Ogg_of_an_unknown_codec_tells_nothing()
    {
        byte[] speex = [.. OggPage(3, 0, 0, [.. "Speex   "u8, .. new byte[72]], type: 2), .. OggPage(3, 1, 16_000 * 10, new byte[20])];

        Assert.Null(AudioDuration.Of(speex));
    }

    [Fact]
    public void Mp4_is_the_mvhd_duration_over_its_timescale()
    {
        AssertSeconds(95.5, AudioDuration.Of(M4a(Mvhd(1000, 95_500))));
        AssertSeconds(200, AudioDuration.Of(M4a(Mvhd(44_100, 44_100UL * 200, version: 1))));
    }

    [Fact]
    public void Fragmented_mp4_without_an_mvhd_duration_uses_mehd()
    {
        var mehd = Box("mehd", new byte[4], [0, 0, 0x75, 0x30]); // version 0, 30 000 units
        AssertSeconds(30, AudioDuration.Of(M4a(Mvhd(1000, 0), Box("mvex", mehd))));
        Assert.Null(AudioDuration.Of(M4a(Mvhd(1000, 0))));
        Assert.Null(AudioDuration.Of(M4a(Box("trak", new byte[16]))));
    }

    [Fact]
    public void Fragmented_mp4_without_any_declared_duration_is_timed_by_its_fragments()
    {
        // Safari's MediaRecorder: 48 kHz AAC, frames of 1024 samples, per-sample durations, decode times in tfdt.
        var frames = Enumerable.Repeat(1024u, 47).ToArray();
        var recorded = FragmentedM4a(
            [Trak(1, 48_000), Box("mvex", Trex(1, 0))],
            Moof(1, frames, decodeTime: 0), Moof(1, frames, decodeTime: 47 * 1024), Moof(1, frames[..10], decodeTime: 94 * 1024));
        AssertSeconds(104 * 1024 / 48_000.0, AudioDuration.Of(recorded));

        // Cut from a longer stream: decode times start at ten hours, and a fragment's tfdt, not the sum before it, places it.
        const ulong TenHours = 10UL * 3600 * 48_000;
        var cut = FragmentedM4a([Trak(1, 48_000)], Moof(1, frames, decodeTime: TenHours), Moof(1, frames, decodeTime: TenHours + 48_000));
        AssertSeconds(1 + 47 * 1024 / 48_000.0, AudioDuration.Of(cut));

        // Durations from tfhd's default, then from trex's; without tfdt a fragment starts where the one before ended.
        var defaults = FragmentedM4a([Trak(7, 16_000), Box("mvex", Trex(7, 320))], Moof(7, count: 500, defaultDuration: 160), Moof(7, count: 250));
        AssertSeconds((500 * 160 + 250 * 320) / 16_000.0, AudioDuration.Of(defaults));

        // An mehd written as 0 before the length was known tells nothing: the fragments do.
        var emptyMehd = FragmentedM4a([Trak(1, 48_000), Box("mvex", FullBox("mehd", 0, 0, 0), Trex(1, 960))], Moof(1, count: 100));
        AssertSeconds(2, AudioDuration.Of(emptyMehd));
    }

    [Fact]
    public void Fragmented_mp4_is_timed_by_its_sound_track()
    {
        // A video track (90 kHz) comes first; only the sound track's fragments and timescale count.
        var both = FragmentedM4a(
            [Trak(1, 90_000, "vide"), Trak(2, 44_100), Box("mvex", Trex(1, 3000), Trex(2, 1024))],
            Moof(1, count: 3000), Moof(2, count: 431), Moof(1, count: 3000), Moof(2, count: 430));
        AssertSeconds(861 * 1024 / 44_100.0, AudioDuration.Of(both));
    }

    [Fact]
    public void Fragmented_mp4_with_version_1_track_headers_reads_the_id_and_timescale_after_their_64_bit_times()
    {
        // tkhd and mdhd of version 1: the track id and the timescale come 8 bytes later than in version 0.
        var recorded = FragmentedM4a([Trak(3, 44_100, version: 1), Box("mvex", Trex(3, 1024))], Moof(3, count: 431), Moof(3, count: 430));
        AssertSeconds(861 * 1024 / 44_100.0, AudioDuration.Of(recorded));
    }

    [Fact]
    public void Fragmented_mp4_with_32_bit_decode_times_places_its_fragments_by_them()
    {
        // tfdt of version 0: a 32-bit decode time. The second fragment starts 2 s after the first, leaving a gap.
        var frames = Enumerable.Repeat(1024u, 10).ToArray();
        var gapped = FragmentedM4a(
            [Trak(1, 48_000)],
            Moof(1, frames, decodeTime: 480_000, decodeTimeVersion: 0), Moof(1, frames, decodeTime: 480_000 + (2 * 48_000), decodeTimeVersion: 0));
        AssertSeconds(2 + (10 * 1024 / 48_000.0), AudioDuration.Of(gapped));
    }

    [Fact]
    public void Fragmented_mp4_finds_the_default_sample_duration_after_the_tfhd_fields_before_it()
    {
        // tfhd's default sample duration follows the base data offset (flag 0x01, 8 bytes) and the sample description
        // index (flag 0x02, 4 bytes) when they are present; trex's default (2048) is not the one that counts.
        byte[][] moov = [Trak(1, 48_000), Box("mvex", Trex(1, 2048))];
        var expected = 100 * 1024 / 48_000.0;
        AssertSeconds(expected, AudioDuration.Of(FragmentedM4a(moov, Moof(1, count: 100, defaultDuration: 1024, baseDataOffset: 1234))));
        AssertSeconds(expected, AudioDuration.Of(FragmentedM4a(moov, Moof(1, count: 100, defaultDuration: 1024, sampleDescription: 1))));
        AssertSeconds(expected, AudioDuration.Of(FragmentedM4a(moov, Moof(1, count: 100, defaultDuration: 1024, baseDataOffset: 1234, sampleDescription: 1))));

        // A tfhd flagged with a base data offset and a default duration that stops short of them.
        var cutShort = Box("moof", FullBox("mfhd", 0, 0, 1), Box("traf", FullBox("tfhd", 0, 0x09, 1, 1024), FullBox("trun", 0, 0x01, 100, 0)));
        Assert.Null(AudioDuration.Of(FragmentedM4a(moov, cutShort)));
    }

    [Fact]
    public void Fragmented_mp4_reads_per_sample_durations_after_the_first_sample_flags()
    {
        // trun flag 0x004: the first sample's flags (here "depends on no other") sit between the data offset and the samples.
        var frames = Enumerable.Repeat(1024u, 10).ToArray();
        var recorded = FragmentedM4a([Trak(1, 48_000)], Moof(1, frames, decodeTime: 0, firstSampleFlags: 0x02000000), Moof(1, frames, firstSampleFlags: 0x02000000));
        AssertSeconds(20 * 1024 / 48_000.0, AudioDuration.Of(recorded));
    }

    [Fact]
    public void Fragmented_mp4_without_a_sound_track_is_timed_by_its_first_track()
    {
        // No hdlr "soun": the first track's fragments, in its timescale (250 × 40 / 1000 = 10 s), not the second's (1 s).
        var noSound = FragmentedM4a(
            [Trak(1, 1000, "vide"), Trak(2, 90_000, "text"), Box("mvex", Trex(1, 40), Trex(2, 3000))],
            Moof(1, count: 250), Moof(2, count: 30));
        AssertSeconds(10, AudioDuration.Of(noSound));

        // No track with a timescale to time by.
        Assert.Null(AudioDuration.Of(FragmentedM4a([Trak(1, 0, "vide"), Box("mvex", Trex(1, 40))], Moof(1, count: 250))));
    }

    [Fact]
    public void Fragmented_mp4_that_tells_nothing_or_lies_is_not_given_a_duration()
    {
        Assert.Null(AudioDuration.Of(FragmentedM4a([Trak(1, 48_000)])));
        Assert.Null(AudioDuration.Of(FragmentedM4a([Trak(1, 48_000)], Moof(2, [1024, 1024]))));
        Assert.Null(AudioDuration.Of(FragmentedM4a([Trak(1, 48_000)], Moof(1, count: 0, defaultDuration: 1024))));
        // A trun that declares more samples than it carries.
        var liar = Moof(1, [1024, 1024]);
        BinaryPrimitives.WriteUInt32BigEndian(liar.AsSpan(liar.Length - 4 * (2 + 2 * 2)), 1_000_000);
        Assert.Null(AudioDuration.Of(FragmentedM4a([Trak(1, 48_000)], liar)));
        // Counts that would overflow: far too long, never short.
        Assert.Equal(TimeSpan.MaxValue, AudioDuration.Of(FragmentedM4a([Trak(1, 1)], Moof(1, [5], decodeTime: 0), Moof(1, [uint.MaxValue], decodeTime: ulong.MaxValue - 5))));
    }

    [Fact]
    public void Webm_is_the_info_duration_times_the_timecode_scale()
    {
        AssertSeconds(12.345, AudioDuration.Of(WebM(12_345)));
        // A 4-byte float Duration with 0.1 ms units.
        byte[] tenths =
        [
            .. WebMHeader(),
            .. Ebml(0x18538067, Ebml(0x1549A966, [.. EbmlUnsigned(0x2AD7B1, 100_000), .. EbmlFloat(0x4489, 400_000, single: true)])),
        ];
        AssertSeconds(40, AudioDuration.Of(tenths));
    }

    [Fact]
    public void Webm_recorded_without_a_duration_is_the_start_of_its_last_block()
    {
        AssertSeconds(61.5, AudioDuration.Of(RecordedWebM(61_000, 500)));
    }

    [Fact]
    public void Webm_without_a_duration_or_blocks_tells_nothing()
    {
        byte[] empty = [.. WebMHeader(), .. Ebml(0x18538067, Ebml(0x1549A966, EbmlUnsigned(0x2AD7B1, 1_000_000)))];

        Assert.Null(AudioDuration.Of(empty));
        Assert.Null(AudioDuration.Of(WebMHeader().AsSpan(0, 6)));
    }

    [Fact]
    public void Truncated_headers_tell_nothing_and_never_throw()
    {
        byte[][] files = [Wav(5), Flac(44_100, 441_000), Mp3WithXing(Mpeg1Layer3Header, 100), OggOpus(5), M4a(Mvhd(1000, 5000)), WebM(5000), RecordedWebM(4000, 100)];
        foreach (var file in files)
        {
            for (var length = 0; length < Math.Min(file.Length, 120); length++)
            {
                var duration = AudioDuration.Of(file.AsSpan(0, length));
                Assert.True(duration is null || duration.Value >= TimeSpan.Zero);
            }
        }
    }
}
