using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Waldur;

/// <summary>How the adapter reaches Waldur (configuration section <c>Waldur</c>).</summary>
public sealed class WaldurOptions : IUpstreamRetryOptions
{
    public const string SectionName = "Waldur";

    /// <summary>Waldur's base address, without <c>/api</c> (e.g. https://waldur.example.org/).</summary>
    [Required]
    [AbsoluteUri]
    public Uri? BaseUrl { get; set; }

    /// <summary>API token of the service-provider account (sent as <c>Authorization: Token …</c>). A secret.</summary>
    [Required]
    public string? Token { get; set; }

    /// <summary>
    /// Time allowed for one HTTP attempt. The resilience pipeline refuses a circuit-breaker window (twice this) under
    /// half a second, and a whole call (every attempt and the waits between them) over a day.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.250", "01:00:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries of one call on transient failures (5xx, 408, 429, network) before the caller sees it.</summary>
    [Range(0, 10)]
    public int RetryAttempts { get; set; } = 3;

    /// <summary>First retry delay; later ones grow exponentially with jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Page size for list calls. At most 300: Waldur serves no larger page (<c>max_page_size</c>), and a list read
    /// stops at its first short page, so a larger setting would silently read only the first 300 items.
    /// </summary>
    [Range(1, 300)]
    public int PageSize { get; set; } = 100;
}
