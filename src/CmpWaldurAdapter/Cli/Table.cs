using System.Text.Json;
using System.Text.Json.Serialization;

namespace CmpWaldurAdapter.Cli;

/// <summary>Plain, aligned text tables for terminal output.</summary>
public static class Table
{
    public static async Task WriteAsync(TextWriter output, IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string?>> rows)
    {
        var materialized = rows.Select(r => r.Select(c => (c ?? "-").ReplaceLineEndings(" ")).ToArray()).ToList();
        if (materialized.Count == 0)
        {
            return;
        }

        var widths = headers.Select((h, i) => Math.Max(h.Length, materialized.Max(r => r[i].Length))).ToArray();
        await output.WriteLineAsync(string.Join("  ", headers.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
        foreach (var row in materialized)
        {
            await output.WriteLineAsync(string.Join("  ", row.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
        }
    }
}

public static class CliJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
    };
}
