using System.CommandLine;
using CmpWaldurAdapter.Hosting;

namespace CmpWaldurAdapter.Cli;

/// <summary>
/// What every command needs: where its output goes and how to build the service host. Tests pass
/// their own writers and configuration, so commands run in-process exactly as operators run them.
/// </summary>
public sealed class CommandContext(TextWriter output, TextWriter error, Action<HostApplicationBuilder>? configureHost = null, Action<WebApplicationBuilder>? configureServer = null)
{
    public static readonly Option<string?> ConfigOption = new("--config")
    {
        Description = "A JSON configuration file (environment variables still override it).",
        Recursive = true,
    };

    public static readonly Option<OutputFormat> OutputOption = new("--output")
    {
        Description = "Output format: table (for people) or json (for scripts).",
        DefaultValueFactory = _ => OutputFormat.Table,
        Recursive = true,
    };

    public TextWriter Output { get; } = output;

    public TextWriter Error { get; } = error;

    public Action<WebApplicationBuilder>? ConfigureServer { get; } = configureServer;

    public IHost BuildHost(ParseResult parse) => AdapterHost.BuildCommandHost(parse.GetValue(ConfigOption), configureHost);
}

public enum OutputFormat
{
    Table,
    Json,
}
