using System.Collections.Concurrent;
using System.Net;
using CmpWaldurAdapter.Knowledge.Sources;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Sources;

/// <summary>The source readers composed through <c>AddKnowledgeSources</c>, as the composition root will, with short timings.</summary>
internal static class SourcesHost
{
    public static ServiceProvider Build(IDictionary<string, string?> settings, TestLogs? logs = null, IHostAddressResolver? resolver = null)
    {
        var values = new Dictionary<string, string?>
        {
            ["Knowledge:Notion:RetryAttempts"] = "2",
            ["Knowledge:Notion:RetryDelay"] = "00:00:00.010",
            ["Knowledge:Notion:AttemptTimeout"] = "00:00:05",
            ["Knowledge:Confluence:RetryAttempts"] = "2",
            ["Knowledge:Confluence:RetryDelay"] = "00:00:00.010",
            ["Knowledge:Confluence:AttemptTimeout"] = "00:00:05",
            ["Knowledge:Url:RetryDelay"] = "00:00:00.010",
            ["Knowledge:Url:Timeout"] = "00:00:05",
        };
        foreach (var (key, value) in settings)
        {
            values[key] = value;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            // Trace, so a token in any log line (ours or HttpClient's) would be caught.
            logging.SetMinimumLevel(LogLevel.Trace);
            if (logs is not null)
            {
                logging.AddProvider(logs);
            }
        });
        services.AddKnowledgeSources(configuration);
        if (resolver is not null)
        {
            services.AddSingleton(resolver);
        }

        return services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }
}

/// <summary>Every log line, rendered with its exception, to check that no secret reaches the logs.</summary>
internal sealed class TestLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

    public void Dispose()
    {
    }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category} {formatter(state, exception)} {state} {exception}");
    }
}

/// <summary>DNS answers chosen by the test, one list per call in turn (the last repeats); names it does not know fail like NXDOMAIN.</summary>
internal sealed class ScriptedResolver : IHostAddressResolver
{
    private readonly ConcurrentDictionary<string, Queue<IPAddress[]>> _answers = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> _calls = new(StringComparer.OrdinalIgnoreCase);

    public ScriptedResolver Answer(string host, params string[][] answers)
    {
        _answers[host] = new Queue<IPAddress[]>(answers.Select(a => a.Select(IPAddress.Parse).ToArray()));
        return this;
    }

    public int Calls(string host) => _calls.GetValueOrDefault(host);

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        _calls.AddOrUpdate(host, 1, (_, n) => n + 1);
        if (!_answers.TryGetValue(host, out var queue))
        {
            throw new System.Net.Sockets.SocketException((int)System.Net.Sockets.SocketError.HostNotFound);
        }

        lock (queue)
        {
            return Task.FromResult(queue.Count > 1 ? queue.Dequeue() : queue.Peek());
        }
    }
}
