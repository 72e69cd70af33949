using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Ragflow;

/// <summary>How the adapter reaches the shared RAGFlow (configuration section <c>Ragflow</c>).</summary>
public sealed class RagflowOptions : IUpstreamRetryOptions
{
    public const string SectionName = "Ragflow";

    /// <summary>RAGFlow's API base address (e.g. http://ragflow:9380/). Never reachable by buyers.</summary>
    [Required]
    [AbsoluteUri]
    public Uri? BaseUrl { get; set; }

    /// <summary>
    /// The service account's API key ("ragflow-…"). A secret: one key for every buyer's dataset, so the
    /// adapter alone keeps buyers apart (dataset ids come only from the adapter's own records).
    /// </summary>
    [Required]
    public string? ApiKey { get; set; }

    /// <summary>
    /// Time allowed for one HTTP attempt. The resilience pipeline refuses a circuit-breaker window (twice this) under
    /// half a second, and a whole call (every attempt and the waits between them) over a day.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.250", "01:00:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries of one read or delete on transient failures; creates are reconciled by name instead.</summary>
    [Range(0, 10)]
    public int RetryAttempts { get; set; } = 3;

    /// <summary>First retry delay; later ones grow exponentially with jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The slowest a document upload may go (bytes a second) before it times out: its attempt and total timeouts grow by
    /// its size at this rate. A busy RAGFlow stores a large file slower than it answers a quick call, and an upload cut
    /// after RAGFlow stored the file leaves a copy nobody recorded.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int UploadMinBytesPerSecond { get; set; } = 1_000_000;
}
