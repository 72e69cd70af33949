using System.Globalization;
using System.Text;

namespace CmpWaldurAdapter.Benchmarks;

/// <summary>A run's record in docs/benchmarks.md: when, on which machine and by which command; what ran; its table; its targets.</summary>
internal static class BenchRecord
{
    /// <summary>The command as the operator typed it (bench.sh passes it on), else this program's own arguments.</summary>
    public static string Command => Environment.GetEnvironmentVariable("BENCH_COMMAND") ?? "CmpWaldurAdapter.Benchmarks " + string.Join(' ', Environment.GetCommandLineArgs().Skip(1));

    /// <summary>
    /// Appends the record: the <paramref name="about"/> lines follow machine and command, then the table (its heading,
    /// alignment and rows), the targets and any failures.
    /// </summary>
    public static async Task AppendAsync(string record, string title, IEnumerable<string> about, IEnumerable<string> table, IEnumerable<string> targets, IReadOnlyCollection<string> failures)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"\n## {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC — {title}\n");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Machine.Describe()}");
        text.AppendLine(CultureInfo.InvariantCulture, $"- Command: `{Command}`");
        foreach (var line in about)
        {
            text.AppendLine("- " + line);
        }

        text.AppendLine();
        foreach (var line in table)
        {
            text.AppendLine(line);
        }

        text.AppendLine();
        text.AppendLine("Targets: " + string.Join("; ", targets) + ".");
        if (failures.Count > 0)
        {
            text.AppendLine("FAILURES: " + string.Join("; ", failures));
        }

        await File.AppendAllTextAsync(record, text.ToString());
        Console.WriteLine($"Recorded in {record}");
    }
}
