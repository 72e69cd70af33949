using CmpWaldurAdapter.Observability;
using Serilog.Events;
using Serilog.Parsing;

namespace CmpWaldurAdapter.UnitTests.Hosting;

/// <summary>Tokens in request paths and query strings never reach a log sink; everything else is left as it was.</summary>
public sealed class LogRedactionTests
{
    [Theory]
    [InlineData("/keys/reveal/AbC123xyz", "/keys/reveal/***")]
    [InlineData("?t=CfDJ8Bg_x-y%2Bz", "?t=***")]
    [InlineData("/console/open?t=CfDJ8Bg&resource=abc#top", "/console/open?t=***&resource=abc#top")]
    [InlineData("?tab=activity&token=s3cr3t&API_KEY=k", "?tab=activity&token=***&API_KEY=***")]
    [InlineData("https://host/x?access_token=a.b.c", "https://host/x?access_token=***")]
    public void Tokens_are_replaced(string text, string expected) => Assert.Equal(expected, LogRedaction.Redact(text));

    [Theory]
    [InlineData("?tab=activity&escalations_after=esc_0f")]
    [InlineData("Reserved 5 credits for request=abc")]
    [InlineData("/console?tab=keys")]
    public void Text_without_a_token_is_left_as_the_same_string(string text) => Assert.Same(text, LogRedaction.Redact(text));

    [Fact]
    public void Every_string_property_of_an_event_is_redacted()
    {
        var logEvent = new LogEvent(DateTimeOffset.UtcNow, LogEventLevel.Information, null, new MessageTemplateParser().Parse("Request starting {Path}{QueryString}"),
        [
            new LogEventProperty("Path", new ScalarValue("/console/open")),
            new LogEventProperty("QueryString", new ScalarValue("?t=CfDJ8secret")),
            new LogEventProperty("Elapsed", new ScalarValue(12.5)),
        ]);

        new LogRedaction().Enrich(logEvent, null!);

        Assert.Equal("Request starting \"/console/open\"\"?t=***\"", logEvent.RenderMessage());
        Assert.Equal(12.5, ((ScalarValue)logEvent.Properties["Elapsed"]).Value);
    }
}
