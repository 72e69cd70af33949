namespace CmpWaldurAdapter.Knowledge.Documents;

/// <summary>Where a document came from, as the API shows it.</summary>
public enum DocumentSource
{
    Upload,
    Url,
    Notion,
    Confluence,
}

/// <summary>
/// One document of a subscription's knowledge base: the adapter's record of a RAGFlow document in the
/// subscription's dataset, its parse state, and whether its parse was charged.
/// </summary>
public sealed class KnowledgeDocument
{
    public Guid Id { get; set; }

    public Guid SubscriptionId { get; set; }

    /// <summary>The connector that brought it, for Notion and Confluence pages.</summary>
    public Guid? ConnectorId { get; set; }

    public DocumentSource Source { get; set; }

    /// <summary>The source's stable id (<c>notion:…</c>, <c>confluence:…</c>, <c>url:…</c>); the re-sync key.</summary>
    public string? ExternalId { get; set; }

    /// <summary>The source's version at upload; a re-sync replaces the document when it changes.</summary>
    public string? SourceVersion { get; set; }

    public string? SourceUrl { get; set; }

    /// <summary>The name RAGFlow gave it (a taken name becomes <c>x(1).pdf</c>); chat citations show it.</summary>
    public string Name { get; set; } = string.Empty;

    public string RagflowDocumentId { get; set; } = string.Empty;

    public long SizeBytes { get; set; }

    /// <summary>RAGFlow's run state: UNSTART, RUNNING, CANCEL, DONE or FAIL.</summary>
    public string Status { get; set; } = ParseStates.Unstart;

    public double Progress { get; set; }

    /// <summary>Why parsing failed, in RAGFlow's words (or the watchdog's).</summary>
    public string? Error { get; set; }

    /// <summary>When the parse was started, or last made progress: the stuck-parse watchdog counts from here.</summary>
    public DateTimeOffset? ParseStartedAt { get; set; }

    /// <summary>Parses started; the watchdog restarts a stuck parse only while this is 1.</summary>
    public int ParseAttempts { get; set; }

    /// <summary>When the first DONE was charged; null until then. The ledger's request id <c>doc:{RAGFlow id}</c> makes the charge exactly-once.</summary>
    public DateTimeOffset? ChargedAt { get; set; }

    public long CreditsCharged { get; set; }

    /// <summary>The ledger hold that pays for the parse, taken at upload; settled when the parse is done, given back if it fails.</summary>
    public Guid? CreditReservationId { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public long Version { get; set; }
}

/// <summary>RAGFlow's document run states.</summary>
public static class ParseStates
{
    public const string Unstart = "UNSTART";
    public const string Running = "RUNNING";
    public const string Cancel = "CANCEL";
    public const string Done = "DONE";
    public const string Fail = "FAIL";

    /// <summary>States in which asking RAGFlow to parse costs nothing twice: a DONE document would be parsed (and paid) again.</summary>
    public static bool MayParse(string? run) => run is Unstart or Fail or Cancel;

    /// <summary>
    /// Our status for the run state RAGFlow reports (upload, list): the one mapping of uploads, <see cref="ParseMonitor"/>
    /// and <see cref="AdoptedDocuments"/>. RAGFlow sends the names, or the digits 0–4 it stores them as; none means never
    /// parsed. Any other value (v0.27 passes a stored value it cannot name through as it is, e.g. "5") is taken as a
    /// parse still running: polled again, never charged (only DONE is), failed, or sent to parse again (a finished
    /// document would be parsed, and paid for, twice); the watchdog stops it only if RAGFlow agrees it is running.
    /// </summary>
    public static string FromRagflow(string? run) => Known(run) ?? Running;

    /// <summary>Whether <see cref="FromRagflow"/> recognises the state rather than assuming a parse in progress.</summary>
    public static bool IsKnown(string? run) => Known(run) is not null;

    // Exact values only: RAGFlow sends no other spelling, and guessing "done" from a variant could charge a parse that is not.
    private static string? Known(string? run) => run switch
    {
        null or "" or Unstart or "0" => Unstart,
        // "5" (SCHEDULE) is queued, not started: followed as running, as it will be.
        Running or "1" or "5" or "SCHEDULE" => Running,
        Cancel or "2" => Cancel,
        Done or "3" => Done,
        Fail or "4" => Fail,
        _ => null,
    };
}
