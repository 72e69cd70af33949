using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>Retry and timeout settings every remote source client shares.</summary>
public abstract class SourceHttpOptions
{
    /// <summary>
    /// Time allowed for one HTTP attempt. The resilience pipeline refuses a circuit-breaker window (twice this) under
    /// half a second, and a whole call (every attempt and the waits between them) over a day.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.250", "01:00:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries of one call on 5xx, 408, 429 (honouring Retry-After) and network errors.</summary>
    [Range(0, 10)]
    public int RetryAttempts { get; set; } = 3;

    /// <summary>First retry delay; later ones grow exponentially with jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Reading a buyer-supplied URL (configuration section <c>Knowledge:Url</c>).</summary>
public sealed class UrlSourceOptions
{
    public const string SectionName = "Knowledge:Url";

    public static readonly IReadOnlyList<string> DefaultContentTypes =
        ["text/html", "text/plain", "text/markdown", "application/pdf", "application/json", "text/csv"];

    /// <summary>Largest body accepted, checked against Content-Length and while streaming.</summary>
    [Range(1, 1L << 30)]
    public long MaxBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>
    /// The whole fetch, every redirect and the body included. It is each attempt's limit too, so it has the same bounds
    /// as <see cref="SourceHttpOptions.AttemptTimeout"/>.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.250", "01:00:00")]
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(20);

    [Range(0, 20)]
    public int MaxRedirects { get; set; } = 5;

    /// <summary>Accepted media types; empty means <see cref="DefaultContentTypes"/> (a list here replaces them, binding cannot merge).</summary>
    public List<string> AllowedContentTypes { get; } = [];

    /// <summary>
    /// Lets URLs (and Confluence sites) resolve to loopback and use plain http; for tests against a
    /// local server. Private, link-local and every other internal range stay refused.
    /// </summary>
    public bool AllowLoopback { get; set; }

    /// <summary>Retries of one request on 5xx, 408, 429 and network errors, within <see cref="Timeout"/>.</summary>
    [Range(0, 5)]
    public int RetryAttempts { get; set; } = 1;

    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    internal IReadOnlyList<string> EffectiveContentTypes => AllowedContentTypes.Count == 0 ? DefaultContentTypes : AllowedContentTypes;
}

/// <summary>Reading Notion pages and databases (configuration section <c>Knowledge:Notion</c>).</summary>
public sealed class NotionSourceOptions : SourceHttpOptions
{
    public const string SectionName = "Knowledge:Notion";

    [Required]
    [AbsoluteUri]
    public Uri BaseUrl { get; set; } = new("https://api.notion.com/");

    /// <summary>The <c>Notion-Version</c> header; the shapes this reader understands are those of this version.</summary>
    [Required]
    public string NotionVersion { get; set; } = "2022-06-28";

    /// <summary>page_size of database queries (Notion's maximum is 100).</summary>
    [Range(1, 100)]
    public int PageSize { get; set; } = 100;

    /// <summary>How deep nested blocks are followed; deeper ones are left out.</summary>
    [Range(1, 100)]
    public int MaxBlockDepth { get; set; } = 20;
}

/// <summary>Reading a Confluence Cloud space (configuration section <c>Knowledge:Confluence</c>).</summary>
public sealed class ConfluenceSourceOptions : SourceHttpOptions
{
    public const string SectionName = "Knowledge:Confluence";

    /// <summary>limit of content list calls.</summary>
    [Range(1, 200)]
    public int PageSize { get; set; } = 50;
}
