using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Tenants;
using Microsoft.AspNetCore.DataProtection.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.ChangeTracking;

namespace CmpWaldurAdapter.Persistence;

/// <summary>
/// The adapter's state. One model for both providers; <see cref="PostgresAdapterDbContext"/> and
/// <see cref="SqliteAdapterDbContext"/> only carry their own migrations.
/// </summary>
public abstract class AdapterDbContext(DbContextOptions options) : DbContext(options), IDataProtectionKeyContext
{
    public DbSet<Customer> Customers => Set<Customer>();

    public DbSet<Workspace> Workspaces => Set<Workspace>();

    public DbSet<Subscription> Subscriptions => Set<Subscription>();

    public DbSet<OrderInboxEntry> OrderInbox => Set<OrderInboxEntry>();

    public DbSet<OrderRecord> Orders => Set<OrderRecord>();

    public DbSet<DataProtectionKey> DataProtectionKeys => Set<DataProtectionKey>();

    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();

    public DbSet<KeyReveal> KeyReveals => Set<KeyReveal>();

    public DbSet<IdempotentRequest> IdempotentRequests => Set<IdempotentRequest>();

    public DbSet<CreditAccount> CreditAccounts => Set<CreditAccount>();

    public DbSet<LedgerEntry> LedgerEntries => Set<LedgerEntry>();

    public DbSet<CreditReservation> CreditReservations => Set<CreditReservation>();

    public DbSet<DemoFlow> DemoFlows => Set<DemoFlow>();

    public DbSet<DemoRuntime> DemoRuntimes => Set<DemoRuntime>();

    public DbSet<Knowledge.Documents.KnowledgeDocument> KnowledgeDocuments => Set<Knowledge.Documents.KnowledgeDocument>();

    public DbSet<Knowledge.Connectors.KnowledgeConnector> KnowledgeConnectors => Set<Knowledge.Connectors.KnowledgeConnector>();

    public DbSet<Web.BuyerWebSettings> BuyerWebSettings => Set<Web.BuyerWebSettings>();

    public DbSet<Capabilities.HandoffWebhook> HandoffWebhooks => Set<Capabilities.HandoffWebhook>();

    public DbSet<Capabilities.HandoffConversation> HandoffConversations => Set<Capabilities.HandoffConversation>();

    public DbSet<Capabilities.HandoffDelivery> HandoffDeliveries => Set<Capabilities.HandoffDelivery>();

    public DbSet<Capabilities.AutomationRun> AutomationRuns => Set<Capabilities.AutomationRun>();

    public DbSet<DatabaseLease> Leases => Set<DatabaseLease>();

    public DbSet<Web.Allowance> Allowances => Set<Web.Allowance>();

    public DbSet<Credits.SpendAlerts.SpendAlert> SpendAlerts => Set<Credits.SpendAlerts.SpendAlert>();

    public DbSet<Usage.UsageCarryover> UsageCarryovers => Set<Usage.UsageCarryover>();

    public DbSet<Web.ConsoleSignOut> ConsoleSignOuts => Set<Web.ConsoleSignOut>();

    public override int SaveChanges(bool acceptAllChangesOnSuccess)
    {
        BumpVersions();
        return base.SaveChanges(acceptAllChangesOnSuccess);
    }

    public override Task<int> SaveChangesAsync(bool acceptAllChangesOnSuccess, CancellationToken cancellationToken = default)
    {
        BumpVersions();
        return base.SaveChangesAsync(acceptAllChangesOnSuccess, cancellationToken);
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<Customer>(customer =>
        {
            customer.HasKey(c => c.Id);
            customer.Property(c => c.Id).ValueGeneratedNever();
            customer.Property(c => c.Name).HasMaxLength(Customer.MaxNameLength);
        });

        modelBuilder.Entity<Workspace>(workspace =>
        {
            workspace.HasKey(w => w.Id);
            workspace.Property(w => w.Id).ValueGeneratedNever();
            workspace.Property(w => w.Name).HasMaxLength(Workspace.MaxNameLength);
            workspace.Property(w => w.LangflowUserId).HasMaxLength(100);
            workspace.Property(w => w.LangflowUsername).HasMaxLength(200);
            workspace.Property(w => w.LangflowApiKeyId).HasMaxLength(100);
            workspace.Property(w => w.Version).IsConcurrencyToken();
            workspace.HasOne<Customer>().WithMany().HasForeignKey(w => w.CustomerId).OnDelete(DeleteBehavior.Restrict);
            workspace.HasIndex(w => w.LangflowUsername).IsUnique();
        });

        modelBuilder.Entity<Subscription>(subscription =>
        {
            subscription.HasKey(s => s.Id);
            subscription.Property(s => s.Id).ValueGeneratedNever();
            subscription.HasIndex(s => s.ResourceUuid).IsUnique();
            subscription.HasIndex(s => new { s.CustomerId, s.State });
            subscription.HasIndex(s => s.WorkspaceId);
            subscription.Property(s => s.Name).HasMaxLength(Subscription.MaxNameLength);
            subscription.Property(s => s.State).HasConversion<string>().HasMaxLength(20);
            subscription.Property(s => s.LangflowProjectId).HasMaxLength(100);
            subscription.Property(s => s.LangflowFlowId).HasMaxLength(100);
            subscription.Property(s => s.RagflowDatasetId).HasMaxLength(100);
            subscription.Property(s => s.Version).IsConcurrencyToken();
            subscription.HasOne<Customer>().WithMany().HasForeignKey(s => s.CustomerId).OnDelete(DeleteBehavior.Restrict);
            subscription.HasOne<Workspace>().WithMany().HasForeignKey(s => s.WorkspaceId).OnDelete(DeleteBehavior.Restrict);
            subscription.Ignore(s => s.IsServable);
        });

        modelBuilder.Entity<OrderInboxEntry>(entry =>
        {
            entry.ToTable("order_inbox");
            entry.HasKey(e => e.Id);
            entry.HasIndex(e => new { e.OrderUuid, e.OrderState }).IsUnique();
            entry.HasIndex(e => new { e.Status, e.NextAttemptAt });
            entry.Property(e => e.OrderState).HasMaxLength(40);
            entry.Property(e => e.Source).HasMaxLength(20);
            entry.Property(e => e.Status).HasConversion<string>().HasMaxLength(20);
            entry.Property(e => e.LastError).HasMaxLength(2000);
        });

        modelBuilder.Entity<OrderRecord>(order =>
        {
            order.HasKey(o => o.OrderUuid);
            order.Property(o => o.OrderUuid).ValueGeneratedNever();
            order.Property(o => o.Type).HasConversion<string>().HasMaxLength(20);
            order.Property(o => o.Phase).HasConversion<string>().HasMaxLength(20);
            order.Property(o => o.CompletedSteps).HasMaxLength(2000);
            order.Property(o => o.LastError).HasMaxLength(OrderRecord.MaxErrorLength);
            order.Property(o => o.Notes).HasMaxLength(8000);
            order.Property(o => o.LeaseOwner).HasMaxLength(200);
            order.HasIndex(o => o.ResourceUuid);
            order.Ignore(o => o.Steps);
        });

        modelBuilder.Entity<ApiKey>(key =>
        {
            key.HasKey(k => k.Id);
            key.Property(k => k.Id).ValueGeneratedNever();
            key.Property(k => k.Kind).HasConversion<string>().HasMaxLength(20);
            key.Property(k => k.Name).HasMaxLength(100);
            key.Property(k => k.Prefix).HasMaxLength(32);
            key.Property(k => k.Hash).HasMaxLength(64);
            key.HasIndex(k => k.Prefix).IsUnique();
            key.HasIndex(k => k.SubscriptionId);
            key.HasOne<Subscription>().WithMany().HasForeignKey(k => k.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<IdempotentRequest>(request =>
        {
            request.HasKey(r => r.Id);
            request.Property(r => r.Id).ValueGeneratedNever();
            request.Property(r => r.Scope).HasMaxLength(IdempotencyStore.MaxScopeLength);
            request.Property(r => r.Key).HasMaxLength(IdempotencyStore.MaxKeyLength);
            request.Property(r => r.RequestHash).HasMaxLength(64);
            request.Property(r => r.ContentType).HasMaxLength(100);
            request.Property(r => r.LedgerRequestId).HasMaxLength(320);
            request.HasIndex(r => new { r.ApiKeyId, r.Scope, r.Key }).IsUnique();
            request.HasIndex(r => r.ExpiresAt);
        });

        modelBuilder.Entity<DemoFlow>(demo =>
        {
            demo.HasKey(d => d.Slug);
            demo.Property(d => d.Slug).HasMaxLength(100);
            demo.Property(d => d.LangflowFlowId).HasMaxLength(64);
            demo.Property(d => d.ContentHash).HasMaxLength(64);
        });

        modelBuilder.Entity<DemoRuntime>(runtime =>
        {
            runtime.HasKey(r => r.Username);
            runtime.Property(r => r.Username).HasMaxLength(100);
            runtime.Property(r => r.LangflowUserId).HasMaxLength(64);
            runtime.Property(r => r.ApiKeyId).HasMaxLength(64);
        });

        modelBuilder.Entity<KeyReveal>(reveal =>
        {
            reveal.HasKey(r => r.Id);
            reveal.Property(r => r.Id).ValueGeneratedNever();
            reveal.Property(r => r.TokenHash).HasMaxLength(64);
            reveal.HasIndex(r => r.TokenHash).IsUnique();
            reveal.HasOne<ApiKey>().WithMany().HasForeignKey(r => r.ApiKeyId).OnDelete(DeleteBehavior.Cascade);
        });

        CreditsModel.Configure(modelBuilder);
        Knowledge.KnowledgeModel.Configure(modelBuilder);
        Web.BuyerWebSettings.Configure(modelBuilder);
        Capabilities.BeyondChatModel.Configure(modelBuilder);
        DatabaseLease.Configure(modelBuilder);
        Web.Allowance.Configure(modelBuilder);
        Credits.SpendAlerts.SpendAlert.Configure(modelBuilder);
        Usage.UsageCarryover.Configure(modelBuilder);
        Web.ConsoleSignOut.Configure(modelBuilder);
    }

    /// <summary>Optimistic concurrency for entities two workers could touch: every update bumps Version.</summary>
    private void BumpVersions()
    {
        foreach (EntityEntry entry in ChangeTracker.Entries())
        {
            if (entry.State == EntityState.Modified && entry.Metadata.FindProperty("Version") is { } version)
            {
                var current = (long)entry.Property(version.Name).CurrentValue!;
                entry.Property(version.Name).CurrentValue = current + 1;
            }
        }
    }
}

public sealed class PostgresAdapterDbContext(DbContextOptions<PostgresAdapterDbContext> options) : AdapterDbContext(options);

public sealed class SqliteAdapterDbContext(DbContextOptions<SqliteAdapterDbContext> options) : AdapterDbContext(options)
{
    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // SQLite cannot compare or order DateTimeOffset text; store UTC ticks so range queries work.
        configurationBuilder.Properties<DateTimeOffset>().HaveConversion<UtcTicksConverter>();
    }

    private sealed class UtcTicksConverter() : Microsoft.EntityFrameworkCore.Storage.ValueConversion.ValueConverter<DateTimeOffset, long>(
        value => value.UtcTicks,
        ticks => new DateTimeOffset(ticks, TimeSpan.Zero));
}
