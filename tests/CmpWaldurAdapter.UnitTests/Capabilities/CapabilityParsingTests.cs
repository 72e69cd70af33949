using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Capabilities.Automations;
using CmpWaldurAdapter.Capabilities.Voice;

namespace CmpWaldurAdapter.UnitTests.Capabilities;

public sealed class CapabilityParsingTests
{
    private static readonly DateTimeOffset Morning = new(2026, 3, 2, 8, 0, 0, TimeSpan.Zero);

    [Fact]
    public void The_latest_firing_is_the_last_one_within_the_grace_period()
    {
        var grace = TimeSpan.FromMinutes(10);

        Assert.Null(AutomationScheduler.LatestFiring("0 0 8 * * ?", Morning.AddSeconds(-1), grace));
        Assert.Equal(Morning, AutomationScheduler.LatestFiring("0 0 8 * * ?", Morning, grace));
        Assert.Equal(Morning, AutomationScheduler.LatestFiring("0 0 8 * * ?", Morning.AddMinutes(9), grace));
        Assert.Null(AutomationScheduler.LatestFiring("0 0 8 * * ?", Morning.AddMinutes(11), grace));
        Assert.Equal(Morning.AddMinutes(5), AutomationScheduler.LatestFiring("0 0/5 * * * ?", Morning.AddMinutes(7), grace));
        Assert.Throws<FormatException>(() => AutomationScheduler.LatestFiring("every morning", Morning, grace));
    }

    [Fact]
    public void A_wav_header_tells_its_duration_and_other_bytes_tell_none()
    {
        var header = new byte[44];
        "RIFF"u8.CopyTo(header);
        "WAVEfmt "u8.CopyTo(header.AsSpan(8));
        BitConverter.TryWriteBytes(header.AsSpan(16), 16);
        BitConverter.TryWriteBytes(header.AsSpan(28), 32000); // byte rate
        "data"u8.CopyTo(header.AsSpan(36));
        BitConverter.TryWriteBytes(header.AsSpan(40), 32000 * 90);

        Assert.Equal(TimeSpan.FromSeconds(90), AudioDuration.Of(header));
        Assert.Null(AudioDuration.Of("ID3 not a wav file at all, just some bytes of mp3"u8));
    }

    [Theory]
    [InlineData("data:image/png;base64,AAEC", new byte[] { 0, 1, 2 })]
    [InlineData("  AAEC\n", new byte[] { 0, 1, 2 })]
    [InlineData("data:image/png,AAEC", null)]
    [InlineData("Sorry, I only chat.", null)]
    [InlineData("", null)]
    public void Flow_answers_carry_media_as_data_uris_or_base64(string answer, byte[]? bytes) =>
        Assert.Equal(bytes, FlowMedia.Bytes(answer));

    [Fact]
    public void Only_http_addresses_are_image_urls()
    {
        Assert.Equal("https://images.example.org/a.png", FlowMedia.Address("https://images.example.org/a.png")!.ToString());
        Assert.Null(FlowMedia.Address("file:///etc/passwd"));
        Assert.Null(FlowMedia.Address("a lighthouse"));
    }
}
