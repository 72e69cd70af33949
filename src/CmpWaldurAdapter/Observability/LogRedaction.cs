using System.Text.RegularExpressions;
using Serilog.Core;
using Serilog.Events;

namespace CmpWaldurAdapter.Observability;

/// <summary>
/// The last line of defence for secrets in logs, applied to every event before any sink:
/// <list type="bullet">
/// <item>one-time key reveal links carry their token in the path, and console links theirs in the query
/// (<c>?t=</c>, a bearer of the buyer's console for weeks); ASP.NET Core puts both on every line of the request
/// (<c>RequestPath</c>, <c>QueryString</c>, "Request starting …"): the tokens are replaced by <c>***</c>;</item>
/// <item>HttpClient's header logging (Trace level) redacts the rendered text but hands the raw header values
/// to Serilog as properties (<c>Authorization=["Bearer …"]</c>): those properties are dropped.</item>
/// </list>
/// </summary>
public sealed partial class LogRedaction : ILogEventEnricher
{
    private const string RevealPath = "/keys/reveal/";

    /// <summary>Query parameters whose values are credentials: the console link's <c>t</c>, and names clients use for keys.</summary>
    private const string SecretParameters = "t|token|key|api_key|access_token|secret|signature";

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
            else if (value is ScalarValue { Value: string text } && Redact(text) is var redacted && !ReferenceEquals(redacted, text))
            {
                (replacements ??= []).Add(new LogEventProperty(name, new ScalarValue(redacted)));
            }
        }

        removals?.ForEach(logEvent.RemovePropertyIfPresent);
        replacements?.ForEach(logEvent.AddOrUpdateProperty);
    }

    /// <summary>The text with every token of a reveal path or a secret query parameter replaced; the same instance when it has none.</summary>
    public static string Redact(string text)
    {
        if (text.Contains(RevealPath, StringComparison.OrdinalIgnoreCase))
        {
            text = RevealToken().Replace(text, "$1***");
        }

        // A query parameter needs '?' or '&' before its '=': most texts with '=' (SQL, say) have neither.
        return text.Contains('=') && text.AsSpan().IndexOfAny('?', '&') >= 0 ? SecretQueryValue().Replace(text, "$1***") : text;
    }

    [GeneratedRegex(@"(/keys/reveal/)[^/?#\s""']+", RegexOptions.IgnoreCase)]
    private static partial Regex RevealToken();

    [GeneratedRegex(@"([?&](?:" + SecretParameters + @")=)[^&#\s""']+", RegexOptions.IgnoreCase)]
    private static partial Regex SecretQueryValue();
}
