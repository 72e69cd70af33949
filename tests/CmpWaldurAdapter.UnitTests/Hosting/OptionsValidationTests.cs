using CmpWaldurAdapter.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using static CmpWaldurAdapter.UnitTests.Hosting.ConfigurationSections;

namespace CmpWaldurAdapter.UnitTests.Hosting;

/// <summary>
/// Every duration, count and address of every options section is checked when the adapter starts: a negative or zero
/// interval, a zero limit or an address without a scheme would otherwise bind without complaint and misbehave later
/// (a busy loop, a lease that is always expired, a client that fails at its first call).
/// </summary>
public sealed class OptionsValidationTests
{
    /// <summary>A configuration every section accepts; Langflow and RAGFlow are set so their sections are bound too.</summary>
    private static readonly Dictionary<string, string?> Valid = new(StringComparer.Ordinal)
    {
        ["Waldur:BaseUrl"] = "https://waldur.example.org/",
        ["Waldur:Token"] = "waldur-token",
        ["Langflow:BaseUrl"] = "http://langflow:7860/",
        ["Langflow:SuperuserUsername"] = "langflow-admin",
        ["Langflow:SuperuserPassword"] = "langflow-password",
        ["Ragflow:BaseUrl"] = "http://ragflow:9380/",
        ["Ragflow:ApiKey"] = "ragflow-key",
        ["Database:ConnectionString"] = "Data Source=:memory:",
    };

    /// <summary>Options where zero means something: off, no grace, read every time, retry at once, none at all.</summary>
    private static readonly string[] ZeroAllowed =
    [
        "Events:Heartbeat", "Events:StableAfter", "Credits:FundingCacheLifetime", "Credits:InvoiceFinalizationGrace", "Chat:MaxHistoryChars",
        "Waldur:RetryAttempts", "Waldur:RetryDelay", "Langflow:RetryAttempts", "Langflow:RetryDelay", "Ragflow:RetryAttempts", "Ragflow:RetryDelay",
        "Knowledge:Url:RetryAttempts", "Knowledge:Url:RetryDelay", "Knowledge:Url:MaxRedirects", "Knowledge:Notion:RetryAttempts",
        "Knowledge:Notion:RetryDelay", "Knowledge:Confluence:RetryAttempts", "Knowledge:Confluence:RetryDelay",
    ];

    public static TheoryData<string, string> ValuesThatWouldMisbehave()
    {
        var data = new TheoryData<string, string>();
        foreach (var (section, type) in All.Where(s => ElementType(s.Value) is null).OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            foreach (var property in BindableProperties(type))
            {
                var key = $"{section}:{property.Name}";
                var kind = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
                var zeroAllowed = ZeroAllowed.Contains(key);
                if (kind == typeof(TimeSpan))
                {
                    data.Add(key, "-00:00:01");
                    if (!zeroAllowed)
                    {
                        data.Add(key, "00:00:00");
                    }
                }
                else if (kind == typeof(int) || kind == typeof(long))
                {
                    data.Add(key, "-1");
                    if (!zeroAllowed)
                    {
                        data.Add(key, "0");
                    }
                }
                else if (kind == typeof(Uri))
                {
                    data.Add(key, "adapter.example.org/no-scheme");
                }
            }
        }

        return data;
    }

    [Fact]
    public void The_valid_configuration_starts_and_every_kind_of_option_is_covered()
    {
        ValidateAtStart(Valid);

        var keys = ValuesThatWouldMisbehave().Select(row => (string)row[0]).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("Orders:LeaseDuration", keys);
        Assert.Contains("Web:PublicBaseUrl", keys);
        Assert.Contains("Knowledge:Url:Timeout", keys);
        Assert.All(ZeroAllowed, key => Assert.Contains(key, keys)); // no stale exemptions
    }

    [Theory]
    [MemberData(nameof(ValuesThatWouldMisbehave))]
    public void A_value_that_would_misbehave_stops_the_adapter_at_start(string key, string value)
    {
        var settings = new Dictionary<string, string?>(Valid, StringComparer.Ordinal) { [key] = value };

        // A section bound by two registrations (a client several parts use) is refused by each.
        var refusal = Record.Exception(() => ValidateAtStart(settings));
        var failures = refusal is AggregateException many ? [.. many.InnerExceptions] : new List<Exception?> { refusal };
        Assert.All(failures, failure =>
        {
            Assert.True(failure is OptionsValidationException, $"{key} = {value} did not stop the start ({failure?.GetType().Name ?? "no failure"})");
            Assert.Contains(key.Split(':')[^1], failure!.Message, StringComparison.Ordinal);
        });
    }

    private static void ValidateAtStart(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddAdapterServices(configuration);
        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IStartupValidator>().Validate();
    }
}
