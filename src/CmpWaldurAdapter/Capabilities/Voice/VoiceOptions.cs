using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Capabilities.Voice;

/// <summary>Voice limits (configuration section <c>Voice</c>).</summary>
public sealed class VoiceOptions
{
    public const string SectionName = "Voice";

    /// <summary>The largest audio file accepted for transcription.</summary>
    [Range(1024, 100 * 1024 * 1024)]
    public int MaxAudioBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>The longest audio accepted for transcription (measured from the container headers: flac, mp3, mp4/m4a, ogg, wav, webm).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan MaxAudioDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest text turned into speech.</summary>
    [Range(1, 100_000)]
    public int MaxSpeechChars { get; set; } = 4096;
}
