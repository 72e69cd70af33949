using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Hosting;

/// <summary>How the server process stops (configuration section <c>Hosting</c>).</summary>
public sealed class HostingOptions
{
    public const string SectionName = "Hosting";

    /// <summary>
    /// How long a stopping server (SIGTERM, e.g. a Kubernetes rollout) waits for in-flight requests, running jobs and
    /// orders before it gives up on them: the host's <c>HostOptions.ShutdownTimeout</c>, whose own default of 30 s
    /// would cut an agent run (<c>Chat:RunTimeout</c>, 2 min) half-way. Keep it longer than <c>Chat:RunTimeout</c>, and
    /// Kubernetes' terminationGracePeriodSeconds longer than it plus the preStop pause (the chart checks that).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(135);
}
