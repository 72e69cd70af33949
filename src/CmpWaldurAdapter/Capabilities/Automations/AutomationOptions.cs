using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Capabilities.Automations;

/// <summary>Automations (configuration section <c>Automations</c>).</summary>
public sealed class AutomationOptions : IValidatableObject
{
    public const string SectionName = "Automations";

    /// <summary>How often schedules are checked; a schedule's firings are found to this precision.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ScheduleCheckInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>A firing missed by longer than this (the adapter was down) is skipped rather than run late.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan MissedFiringGrace { get; set; } = TimeSpan.FromMinutes(10);

    [Range(1024, 10 * 1024 * 1024)]
    public int MaxInputBytes { get; set; } = 64 * 1024;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // Each check looks back only this far: a shorter grace than the time between checks skips firings while running.
        if (MissedFiringGrace <= ScheduleCheckInterval)
        {
            yield return new ValidationResult("Automations:MissedFiringGrace must be longer than Automations:ScheduleCheckInterval.", [nameof(MissedFiringGrace), nameof(ScheduleCheckInterval)]);
        }
    }
}
