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

        var refusal = RefusalAtStart(settings, $"{key} = {value}");

        Assert.Contains(key.Split(':')[^1], refusal, StringComparison.Ordinal);
    }

    /// <summary>One month per report would never send the charges settled after a month's last report.</summary>
    [Fact]
    public void A_usage_report_of_the_current_month_only_stops_the_adapter_at_start()
    {
        var refusal = RefusalAtStart(ValidWith("Usage:ReportingPeriods=1"), "Usage:ReportingPeriods = 1");

        Assert.Contains("ReportingPeriods", refusal, StringComparison.Ordinal);
        Assert.Contains("2", refusal, StringComparison.Ordinal);
        ValidateAtStart(ValidWith("Usage:ReportingPeriods=2"));
    }

    /// <summary>
    /// A proxy network that is no CIDR network stops the start whether or not forwarded headers are trusted yet: the
    /// chart passes the list through, and a typo would otherwise show only when the headers are turned on.
    /// </summary>
    [Theory]
    [InlineData("10.244.0.1")]
    [InlineData("10.244.0.0/33")]
    [InlineData("ingress-nginx")]
    public void A_forwarded_proxy_network_that_is_no_cidr_network_stops_the_adapter_at_start(string network)
    {
        var refusal = RefusalAtStart(ValidWith($"Web:ForwardedProxyNetworks:0=10.244.0.0/16; Web:ForwardedProxyNetworks:1={network}"), $"Web:ForwardedProxyNetworks = {network}");

        Assert.Contains("Web:ForwardedProxyNetworks", refusal, StringComparison.Ordinal);
        Assert.Contains($"'{network}'", refusal, StringComparison.Ordinal);
        ValidateAtStart(ValidWith("Web:ForwardedProxyNetworks:0=10.244.0.0/16; Web:ForwardedProxyNetworks:1=10.244.1.17/32; Web:ForwardedProxyNetworks:2=fd00::/8"));
    }

    /// <summary>An unknown Waldur time zone would date every usage wrongly; the refusal names the option.</summary>
    [Theory]
    [InlineData("Mars/Olympus_Mons")]
    [InlineData("")]
    public void An_unknown_waldur_time_zone_stops_the_adapter_at_start(string zone)
    {
        var refusal = RefusalAtStart(ValidWith($"Waldur:TimeZone={zone}"), $"Waldur:TimeZone = {zone}");

        Assert.Contains("Waldur:TimeZone", refusal, StringComparison.Ordinal);
        ValidateAtStart(ValidWith("Waldur:TimeZone=America/New_York"));
    }

    /// <summary>
    /// The key ring's key-encryption key must be 32 bytes; the refusal names the option and says what is wrong, never
    /// the value (it is a secret, and this message is printed and logged).
    /// </summary>
    [Theory]
    [InlineData("DataProtection:KeyEncryptionKey", "c2l4dGVlbi1ieXRlLWtleQ==", "16 bytes")] // 16 bytes: AES-128's length, not ours
    [InlineData("DataProtection:KeyEncryptionKey", "dGhpcnR5LXRocmVlLWJ5dGVzLW9mLWtleS1tYXRlcmlh", "33 bytes")]
    [InlineData("DataProtection:KeyEncryptionKey", "not base64 at all!", "not base64")]
    [InlineData("DataProtection:PreviousKeyEncryptionKeys:0", "c2l4dGVlbi1ieXRlLWtleQ==", "16 bytes")]
    public void A_key_encryption_key_that_is_not_32_bytes_stops_the_adapter_at_start_without_showing_it(string key, string value, string why)
    {
        var settings = ValidWith($"DataProtection:KeyEncryptionKey={ValidKeyEncryptionKey}");
        settings[key] = value;

        var refusal = RefusalAtStart(settings, $"{key} = {value}");

        Assert.Contains(key, refusal, StringComparison.Ordinal);
        Assert.Contains(why, refusal, StringComparison.Ordinal);
        Assert.DoesNotContain(value, refusal, StringComparison.Ordinal);
        ValidateAtStart(ValidWith($"DataProtection:KeyEncryptionKey={ValidKeyEncryptionKey}; DataProtection:PreviousKeyEncryptionKeys:0={ValidKeyEncryptionKey}"));
    }

    /// <summary>
    /// On PostgreSQL the key ring is shared and backed up with everything else: without a key-encryption key a copy of
    /// the database decrypts every tenant's credentials, so the start is refused unless the operator opts out. SQLite
    /// (embedded, single replica) may run without one.
    /// </summary>
    [Fact]
    public void Postgres_without_a_key_encryption_key_stops_the_adapter_at_start_unless_explicitly_allowed()
    {
        var refusal = RefusalAtStart(ValidWith("Database:Provider=Postgres; Database:ConnectionString=Host=db;Database=cmp"), "Postgres without a key-encryption key");

        Assert.Contains("DataProtection:KeyEncryptionKey is required with Database:Provider=Postgres", refusal, StringComparison.Ordinal);
        Assert.Contains("openssl rand -base64 32", refusal, StringComparison.Ordinal);
        Assert.Contains("DataProtection:AllowUnencryptedKeyRing=true", refusal, StringComparison.Ordinal);
        ValidateAtStart(ValidWith("Database:Provider=Postgres; Database:ConnectionString=Host=db;Database=cmp; DataProtection:AllowUnencryptedKeyRing=true"));
        ValidateAtStart(ValidWith($"Database:Provider=Postgres; Database:ConnectionString=Host=db;Database=cmp; DataProtection:KeyEncryptionKey={ValidKeyEncryptionKey}"));
        ValidateAtStart(Valid); // SQLite

        // Previous keys only decrypt: without a current one nothing new would be encrypted.
        Assert.Contains("DataProtection:KeyEncryptionKey", RefusalAtStart(ValidWith($"DataProtection:PreviousKeyEncryptionKeys:0={ValidKeyEncryptionKey}"), "previous keys only"), StringComparison.Ordinal);
    }

    private const string ValidKeyEncryptionKey = "dGVzdC1rZXktZW5jcnlwdGlvbi1rZXktMzItYnl0ZXM=";

    /// <summary>Events on with no address would listen to nothing: orders would wait minutes for the fallback poll.</summary>
    [Theory]
    [InlineData("Events:Enabled=true")]
    [InlineData("Events:Enabled=true; Events:WebSocketUrl=")]
    public void Events_on_without_a_websocket_address_stops_the_adapter_at_start_naming_both_settings(string settings)
    {
        var refusal = RefusalAtStart(ValidWith(settings), settings);

        Assert.Contains("Events:WebSocketUrl", refusal, StringComparison.Ordinal);
        Assert.Contains("Events:Enabled", refusal, StringComparison.Ordinal);
        ValidateAtStart(ValidWith("Events:Enabled=true; Events:WebSocketUrl=wss://waldur.example.org/rmqws-stomp"));
        ValidateAtStart(ValidWith("Events:Enabled=false; Events:WebSocketUrl="));
    }

    /// <summary>Pairs of options that only work one way round: a backoff's start and cap, a renewal and what it renews.</summary>
    public static TheoryData<string, string, string> PairsTheWrongWayRound() => new()
    {
        { "Orders:RetryInitial=00:10:00; Orders:RetryMaximum=00:01:00", "Orders:RetryMaximum", "Orders:RetryInitial" },
        { "Handoff:FirstRetryDelay=02:00:00", "Handoff:MaxRetryDelay", "Handoff:FirstRetryDelay" },
        { "Events:InitialReconnectDelay=00:05:00", "Events:MaxReconnectDelay", "Events:InitialReconnectDelay" },
        { "Automations:MissedFiringGrace=00:01:00", "Automations:MissedFiringGrace", "Automations:ScheduleCheckInterval" },
        { "Web:ConsoleLinkRenewBefore=12:00:00; Web:ConsoleLinkRenewalInterval=12:00:00", "Web:ConsoleLinkRenewalInterval", "Web:ConsoleLinkRenewBefore" },
        { "Web:ConsoleLinkLifetime=1.00:00:00; Web:ConsoleLinkRenewalInterval=12:00:00", "Web:ConsoleLinkRenewalInterval", "Web:ConsoleLinkLifetime" },
        { "Chat:IdempotencyWindow=00:06:59", "Chat:IdempotencyWindow", "Chat:RunTimeout" },
        // Across sections: a credit hold released before its request settles leaves the answer free.
        { "Credits:ReservationTimeout=00:08:00", "Credits:ReservationTimeout", "Chat:RunTimeout" },
        { "Chat:RunTimeout=00:04:00", "Credits:ReservationTimeout", "Chat:RunTimeout" },
        { "Images:MaxImagesPerRequest=8", "Credits:ReservationTimeout", "Images:MaxImagesPerRequest" },
        { "Ragflow:AttemptTimeout=00:13:00", "Credits:ReservationTimeout", "Ragflow:AttemptTimeout" },
    };

    [Theory]
    [MemberData(nameof(PairsTheWrongWayRound))]
    public void A_pair_the_wrong_way_round_stops_the_adapter_at_start_naming_both(string pair, string first, string second)
    {
        var refusal = RefusalAtStart(ValidWith(pair), pair);

        Assert.Contains(first, refusal, StringComparison.Ordinal);
        Assert.Contains(second, refusal, StringComparison.Ordinal);
    }

    /// <summary>Each pair as close as it may come; the defaults pass too (the valid configuration sets none of them).</summary>
    public static TheoryData<string> PairsAtTheirLimit() => new()
    {
        "Orders:RetryInitial=00:01:00; Orders:RetryMaximum=00:01:00",
        "Handoff:FirstRetryDelay=01:00:00; Handoff:MaxRetryDelay=01:00:00",
        "Events:InitialReconnectDelay=00:02:00; Events:MaxReconnectDelay=00:02:00",
        "Automations:ScheduleCheckInterval=00:01:00; Automations:MissedFiringGrace=00:01:00.001",
        "Web:ConsoleLinkLifetime=1.00:00:00; Web:ConsoleLinkRenewBefore=1.00:00:00; Web:ConsoleLinkRenewalInterval=11:59:59",
        "Chat:IdempotencyWindow=00:07:00",
        "Credits:ReservationTimeout=00:08:00.001",
        "Images:MaxImagesPerRequest=1; Credits:ReservationTimeout=00:02:30.001",
        "Ragflow:AttemptTimeout=01:00:00; Credits:ReservationTimeout=01:02:00.001",
    };

    /// <summary>Without RAGFlow nothing is searched before a run: only the runs themselves bound the hold.</summary>
    [Fact]
    public void Without_ragflow_a_hold_need_only_outlive_the_runs()
    {
        var settings = ValidWith("Images:MaxImagesPerRequest=1; Credits:ReservationTimeout=00:02:00.001");
        settings.Remove("Ragflow:BaseUrl");
        settings.Remove("Ragflow:ApiKey");
        settings.Remove("Langflow:BaseUrl"); // Langflow needs RAGFlow

        ValidateAtStart(settings);
        Assert.Contains("Ragflow:AttemptTimeout", RefusalAtStart(ValidWith("Images:MaxImagesPerRequest=1; Credits:ReservationTimeout=00:02:00.001"), "with RAGFlow"), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(PairsAtTheirLimit))]
    public void A_pair_at_its_limit_starts(string pair) => ValidateAtStart(ValidWith(pair));

    /// <summary>The valid configuration with "Section:Key=value; …" set over it.</summary>
    private static Dictionary<string, string?> ValidWith(string overrides)
    {
        var settings = new Dictionary<string, string?>(Valid, StringComparer.Ordinal);
        foreach (var setting in overrides.Split("; "))
        {
            var keyAndValue = setting.Split('=', 2);
            settings[keyAndValue[0]] = keyAndValue[1];
        }

        return settings;
    }

    /// <summary>
    /// The one failure that stopped the start. One: a failure reported twice (an upstream's options read again by its
    /// resilience pipeline, whose options are validated at start too) comes as an AggregateException, which the
    /// command line does not report as a configuration error.
    /// </summary>
    private static string RefusalAtStart(Dictionary<string, string?> settings, string what)
    {
        var refusal = Record.Exception(() => ValidateAtStart(settings));
        var failure = refusal as OptionsValidationException;
        Assert.True(failure is not null, $"{what} did not stop the start with one failure ({refusal?.Message ?? "no failure"})");
        return Assert.Single(failure.Failures);
    }

    internal static void ValidateAtStart(Dictionary<string, string?> settings) =>
        ValidateAtStart(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());

    internal static void ValidateAtStart(IConfiguration configuration)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddAdapterServices(configuration);
        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IStartupValidator>().Validate();
    }
}
