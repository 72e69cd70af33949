using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Knowledge;

/// <summary>Limits and timings of the knowledge base (configuration section <c>Knowledge</c>).</summary>
public sealed class KnowledgeOptions : IValidatableObject
{
    public const string SectionName = "Knowledge";

    public static readonly IReadOnlyList<string> DefaultExtensions = ["pdf", "docx", "txt", "md", "html", "csv", "xlsx", "pptx", "json"];

    /// <summary>Largest file accepted, per file (uploads, URLs and connector pages alike).</summary>
    [Range(1, 1L << 30)]
    public long MaxFileBytes { get; set; } = 25 * 1024 * 1024;

    /// <summary>Most files in one upload request.</summary>
    [Range(1, 100)]
    public int MaxFilesPerUpload { get; set; } = 20;

    /// <summary>Most documents one subscription's knowledge base may hold.</summary>
    [Range(1, 1_000_000)]
    public int MaxDocumentsPerSubscription { get; set; } = 500;

    /// <summary>Accepted file extensions, without the dot; empty means <see cref="DefaultExtensions"/> (a list here replaces them).</summary>
    public List<string> AllowedExtensions { get; } = [];

    /// <summary>How often parsing documents are polled in RAGFlow.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>A parse that makes no progress for this long is stuck: it is stopped and started again once, then failed.</summary>
    public TimeSpan StuckAfter { get; set; } = TimeSpan.FromMinutes(60);

    /// <summary>
    /// How long a connector re-sync may hold its lease (one sync per connector across all replicas). A sync
    /// whose process died or lost its database frees the connector after this time.
    /// </summary>
    public TimeSpan SyncLeaseDuration { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// How long a parse's credit hold lives: a parse and its one restart (each up to <see cref="StuckAfter"/>), the
    /// polls that start it, notice it stuck and see it done, and half an hour for the adapter being restarted or
    /// briefly down meanwhile. The ledger's default expiry (minutes, sized for chat) would end it mid-parse. A parse
    /// that keeps running (a long scan, making progress) has its hold moved on to now + this by the parse monitor.
    /// </summary>
    internal TimeSpan ParseHoldLifetime => (2 * StuckAfter) + (3 * PollInterval) + TimeSpan.FromMinutes(30);

    internal IReadOnlyList<string> EffectiveExtensions => AllowedExtensions.Count == 0 ? DefaultExtensions : AllowedExtensions;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (PollInterval <= TimeSpan.Zero)
        {
            yield return new ValidationResult("Knowledge:PollInterval must be positive.", [nameof(PollInterval)]);
        }

        if (SyncLeaseDuration <= TimeSpan.Zero)
        {
            yield return new ValidationResult("Knowledge:SyncLeaseDuration must be positive.", [nameof(SyncLeaseDuration)]);
        }

        if (StuckAfter <= TimeSpan.Zero)
        {
            yield return new ValidationResult("Knowledge:StuckAfter must be positive.", [nameof(StuckAfter)]);
        }
    }
}
