using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Waldur;

/// <summary>How the adapter reaches Waldur (configuration section <c>Waldur</c>).</summary>
public sealed class WaldurOptions : IUpstreamRetryOptions, IValidatableObject
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

    /// <summary>
    /// Waldur's time zone (its Django <c>TIME_ZONE</c>, UTC unless its operators changed it), an IANA id: Waldur files a
    /// usage under the month its date falls in there, so west of UTC a month's usage is dated the 1st's local midnight.
    /// </summary>
    public string TimeZone { get; set; } = "UTC";

    /// <summary>The zone <see cref="TimeZone"/> names (checked at start).</summary>
    public TimeZoneInfo FindTimeZone() => TimeZoneInfo.FindSystemTimeZoneById(TimeZone);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (string.IsNullOrWhiteSpace(TimeZone) || !TimeZoneInfo.TryFindSystemTimeZoneById(TimeZone, out _))
        {
            yield return new ValidationResult(
                $"Waldur:TimeZone '{TimeZone}' is not a known IANA time zone id; set Waldur's TIME_ZONE, e.g. UTC or America/New_York.", [nameof(TimeZone)]);
        }
    }
}
