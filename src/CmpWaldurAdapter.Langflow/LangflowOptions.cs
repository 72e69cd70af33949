using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.Langflow;

/// <summary>How the adapter reaches the shared Langflow (configuration section <c>Langflow</c>).</summary>
public sealed class LangflowOptions : IUpstreamRetryOptions
{
    public const string SectionName = "Langflow";

    /// <summary>Langflow's base address (e.g. http://langflow:7860/). Never reachable by buyers.</summary>
    [Required]
    [AbsoluteUri]
    public Uri? BaseUrl { get; set; }

    /// <summary>The superuser that creates, activates and deletes tenant users. A secret.</summary>
    [Required]
    public string? SuperuserUsername { get; set; }

    /// <summary>The superuser's password. A secret.</summary>
    [Required]
    public string? SuperuserPassword { get; set; }

    /// <summary>
    /// Time allowed for one HTTP attempt. The resilience pipeline refuses a circuit-breaker window (twice this) under
    /// half a second, and a whole call (every attempt and the waits between them) over a day.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.250", "01:00:00")]
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Retries of one read or delete on transient failures; creates are never retried blindly (they are reconciled by name).</summary>
    [Range(0, 10)]
    public int RetryAttempts { get; set; } = 3;

    /// <summary>First retry delay; later ones grow exponentially with jitter.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a superuser login is reused (Langflow's access tokens last an hour).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan SuperuserTokenLifetime { get; set; } = TimeSpan.FromMinutes(30);
}
