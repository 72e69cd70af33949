using Serilog.Events;

namespace CmpWaldurAdapter.Testing.Hosting;

public static class DatabaseErrorLogs
{
    /// <summary>
    /// What EF Core logged at error level (a failed command, a failed save), rendered: a race a replica loses quietly
    /// leaves none. Other errors (an upstream timing out on a loaded machine) are not the database's.
    /// </summary>
    public static IReadOnlyList<string> DatabaseErrors(this CapturedLogs logs) =>
        [.. logs.Events
            .Where(e => e.Level >= LogEventLevel.Error && e.Properties.TryGetValue("SourceContext", out var source)
                && source is ScalarValue { Value: string name } && name.StartsWith("Microsoft.EntityFrameworkCore", StringComparison.Ordinal))
            .Select(e => e.RenderMessage())];
}
