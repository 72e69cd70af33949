using System.Globalization;
using System.Security.Cryptography;
using CmpWaldurAdapter.Core.Credits;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// What the buyer pages keep per subscription beyond its configuration: the console link version (bumped to
/// rotate the link, which invalidates every older link and console session), the widget's allowed domains and
/// daily message cap, the monthly spend alert, and the uploaded logo.
/// </summary>
public sealed class BuyerWebSettings
{
    public const int MaxWidgetDailyMessageCap = 1_000_000;

    public Guid SubscriptionId { get; set; }

    public int ConsoleLinkVersion { get; set; } = 1;

    /// <summary>
    /// When <see cref="ConsoleLinkRenewal"/> is to put a fresh link in the Waldur report: a link's renewal period after
    /// it was made, at once for a report that may show a link not in force, later for a resource Waldur refused. Null:
    /// not recorded (links made before this was kept).
    /// </summary>
    public DateTimeOffset? ConsoleLinkRenewAt { get; set; }

    /// <summary>Newline-separated host patterns (<c>shop.example.com</c>, <c>*.example.com</c>, <c>localhost:8080</c>).</summary>
    public string AllowedDomains { get; set; } = string.Empty;

    /// <summary>Widget messages the subscription answers per day (UTC); null = no cap. Set in the console's Widget tab.</summary>
    public int? WidgetDailyMessageCap { get; set; }

    /// <summary>
    /// Credits charged to the subscription in a calendar month (UTC) at whose 50, 80 and 100 % the buyer is alerted;
    /// null = no alert. Set in the console's Usage tab; see <see cref="Credits.SpendAlerts.SpendAlertMonitor"/>.
    /// </summary>
    public long? MonthlySpendAlertCredits { get; set; }

    /// <summary>When <see cref="MonthlySpendAlertCredits"/> last changed (null: before this was kept); a month that ended before is not measured against it.</summary>
    public DateTimeOffset? MonthlySpendAlertSetAt { get; set; }

    public string? LogoContentType { get; set; }

    public byte[]? Logo { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>The logo's version: a hash of the image itself, so a new logo always has a new one; null without a logo.</summary>
    public string? LogoVersion() => Logo is null ? null : Convert.ToHexStringLower(SHA256.HashData(Logo))[..16];

    /// <summary>
    /// The logo's address under the adapter's (<c>web/logo/{subscription}?v={version}</c>), the one the console and the
    /// widget show: the version makes it name one image for good, so browsers keep it; null without a logo.
    /// </summary>
    public string? LogoPath() => LogoVersion() is { } version ? $"web/logo/{SubscriptionId}?v={version}" : null;

    public IReadOnlyList<string> AllowedDomainList =>
        AllowedDomains.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>The console's cap field: empty is no cap, otherwise a whole number from 1 to <see cref="MaxWidgetDailyMessageCap"/>.</summary>
    public static bool TryParseDailyCap(string? input, out int? cap, out string error)
    {
        var parsed = TryParseOptional(input, MaxWidgetDailyMessageCap,
            $"The daily message cap must be a whole number from 1 to {MaxWidgetDailyMessageCap}, or empty for no cap.", out var value, out error);
        cap = (int?)value;
        return parsed;
    }

    /// <summary>The console's spend alert field: empty is no alert, otherwise a whole number of credits from 1 to <see cref="SpendAlertRules.MaxAlertCredits"/>.</summary>
    public static bool TryParseSpendAlert(string? input, out long? credits, out string error) =>
        TryParseOptional(input, SpendAlertRules.MaxAlertCredits,
            $"The monthly spend alert must be a whole number of credits from 1 to {SpendAlertRules.MaxAlertCredits}, or empty for no alert.", out credits, out error);

    /// <summary>
    /// An optional console number: empty (after trimming) is none; otherwise plain ASCII digits from 1 to
    /// <paramref name="max"/>, or <paramref name="refused"/> is the error.
    /// </summary>
    private static bool TryParseOptional(string? input, long max, string refused, out long? value, out string error)
    {
        (value, error) = (null, string.Empty);
        var text = input?.Trim() ?? string.Empty;
        if (text.Length == 0)
        {
            return true;
        }

        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number >= 1 && number <= max)
        {
            value = number;
            return true;
        }

        error = refused;
        return false;
    }

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<BuyerWebSettings>(settings =>
        {
            settings.ToTable("buyer_web_settings");
            settings.HasKey(s => s.SubscriptionId);
            settings.Property(s => s.SubscriptionId).ValueGeneratedNever();
            settings.Property(s => s.AllowedDomains).HasMaxLength(OriginRules.MaxListLength);
            settings.Property(s => s.LogoContentType).HasMaxLength(40);
            settings.HasOne<Tenants.Subscription>().WithMany().HasForeignKey(s => s.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
            settings.Ignore(s => s.AllowedDomainList);
            // The spend alert job reads only the subscriptions that set an alert.
            settings.HasIndex(s => s.MonthlySpendAlertCredits).HasFilter("monthly_spend_alert_credits IS NOT NULL");
        });
}
