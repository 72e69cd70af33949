using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// What the buyer pages keep per subscription beyond its configuration: the console link version (bumped to
/// rotate the link, which invalidates every older link and console session), the widget's allowed domains,
/// and the uploaded logo.
/// </summary>
public sealed class BuyerWebSettings
{
    public Guid SubscriptionId { get; set; }

    public int ConsoleLinkVersion { get; set; } = 1;

    /// <summary>Newline-separated host patterns (<c>shop.example.com</c>, <c>*.example.com</c>, <c>localhost:8080</c>).</summary>
    public string AllowedDomains { get; set; } = string.Empty;

    public string? LogoContentType { get; set; }

    public byte[]? Logo { get; set; }

    public DateTimeOffset UpdatedAt { get; set; }

    public IReadOnlyList<string> AllowedDomainList =>
        AllowedDomains.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    internal static void Configure(ModelBuilder modelBuilder) =>
        modelBuilder.Entity<BuyerWebSettings>(settings =>
        {
            settings.ToTable("buyer_web_settings");
            settings.HasKey(s => s.SubscriptionId);
            settings.Property(s => s.SubscriptionId).ValueGeneratedNever();
            settings.Property(s => s.AllowedDomains).HasMaxLength(8000);
            settings.Property(s => s.LogoContentType).HasMaxLength(40);
            settings.HasOne<Tenants.Subscription>().WithMany().HasForeignKey(s => s.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
            settings.Ignore(s => s.AllowedDomainList);
        });
}
