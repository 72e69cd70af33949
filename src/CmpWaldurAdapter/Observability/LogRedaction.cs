using System.Text.RegularExpressions;
using Serilog.Core;
using Serilog.Events;

namespace CmpWaldurAdapter.Observability;

/// <summary>
/// The last line of defence for secrets in logs, applied to every event before any sink:
/// <list type="bullet">
/// <item>one-time key reveal links carry their token in the path, which ASP.NET Core puts on every line of
/// the request (<c>RequestPath</c>, "Request starting …"): the token is replaced by <c>***</c>;</item>
/// <item>HttpClient's header logging (Trace level) redacts the rendered text but hands the raw header values
/// to Serilog as properties (<c>Authorization=["Bearer …"]</c>): those properties are dropped.</item>
/// </list>
/// </summary>
public sealed partial class LogRedaction : ILogEventEnricher
{
    private const string RevealPath = "/keys/reveal/";

    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
    {
        var headerLine = logEvent.Properties.ContainsKey("HttpHeadersLogValue");
        List<LogEventProperty>? replacements = null;
        List<string>? removals = null;
        foreach (var (name, value) in logEvent.Properties)
        {
            if (headerLine && value is SequenceValue)
            {
                (removals ??= []).Add(name);
            }
            else if (value is ScalarValue { Value: string text } && text.Contains(RevealPath, StringComparison.OrdinalIgnoreCase))
            {
                (replacements ??= []).Add(new LogEventProperty(name, new ScalarValue(Redact(text))));
            }
        }

        removals?.ForEach(logEvent.RemovePropertyIfPresent);
        replacements?.ForEach(logEvent.AddOrUpdateProperty);
    }

    public static string Redact(string text) => RevealToken().Replace(text, "$1***");

    [GeneratedRegex(@"(/keys/reveal/)[^/?#\s""']+", RegexOptions.IgnoreCase)]
    private static partial Regex RevealToken();
}
