using System.ComponentModel.DataAnnotations;

namespace CmpWaldurAdapter.Usage;

/// <summary>Usage reporting to Waldur and the usage API (configuration section <c>Usage</c>).</summary>
public sealed class UsageOptions
{
    public const string SectionName = "Usage";

    /// <summary>How often month-to-date totals are compared with Waldur and sent where they differ.</summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Months each report covers: the current one and the ones before it (late settlements).</summary>
    [Range(1, 12)]
    public int ReportingPeriods { get; set; } = 2;

    /// <summary>
    /// Bearer tokens accepted by <c>GET /v1/usage</c> until subscription API keys exist: each maps the
    /// SHA-256 (hex) of a token to a subscription id. Only hashes are configured, never tokens.
    /// </summary>
    public List<UsageApiToken> ApiTokens { get; set; } = [];
}

public sealed class UsageApiToken
{
    /// <summary>Lower- or upper-case hex SHA-256 of the token.</summary>
    public string Sha256 { get; set; } = string.Empty;

    /// <summary>The adapter's subscription id (the Waldur resource's backend_id).</summary>
    public Guid Subscription { get; set; }
}
