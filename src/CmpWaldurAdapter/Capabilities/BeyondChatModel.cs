using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Capabilities;

/// <summary>The tables of the capabilities beyond chat: handoff webhooks, conversations and outbox; automation runs.</summary>
internal static class BeyondChatModel
{
    public static void Configure(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<HandoffWebhook>(webhook =>
        {
            webhook.ToTable("handoff_webhooks");
            webhook.HasKey(w => w.SubscriptionId);
            webhook.Property(w => w.Url).HasMaxLength(2000);
            webhook.HasOne<Subscription>().WithOne().HasForeignKey<HandoffWebhook>(w => w.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
        });

        modelBuilder.Entity<HandoffConversation>(conversation =>
        {
            conversation.ToTable("handoff_conversations");
            conversation.HasKey(c => c.Id);
            conversation.Property(c => c.Id).ValueGeneratedNever();
            conversation.Property(c => c.Conversation).HasMaxLength(100);
            conversation.Property(c => c.EscalationReason).HasMaxLength(40);
            conversation.Property(c => c.Version).IsConcurrencyToken();
            conversation.HasOne<Subscription>().WithMany().HasForeignKey(c => c.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
            conversation.HasIndex(c => new { c.SubscriptionId, c.Conversation }).IsUnique();
            conversation.HasIndex(c => new { c.SubscriptionId, c.EscalatedAt });
            // The purge finds the idle conversations without reading them all.
            conversation.HasIndex(c => c.UpdatedAt);
        });

        modelBuilder.Entity<HandoffDelivery>(delivery =>
        {
            delivery.ToTable("handoff_deliveries");
            delivery.HasKey(d => d.Id);
            delivery.Property(d => d.Id).ValueGeneratedNever();
            delivery.Property(d => d.LastError).HasMaxLength(500);
            delivery.HasOne<HandoffConversation>().WithMany().HasForeignKey(d => d.ConversationId).OnDelete(DeleteBehavior.Cascade);
            delivery.HasIndex(d => new { d.DeliveredAt, d.NextAttemptAt });
        });

        modelBuilder.Entity<AutomationRun>(run =>
        {
            run.ToTable("automation_runs");
            run.HasKey(r => r.Id);
            run.Property(r => r.Id).ValueGeneratedNever();
            run.Property(r => r.Trigger).HasMaxLength(20);
            run.Property(r => r.Status).HasMaxLength(20);
            run.Property(r => r.Error).HasMaxLength(500);
            run.HasOne<Subscription>().WithMany().HasForeignKey(r => r.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
            run.HasIndex(r => new { r.SubscriptionId, r.CreatedAt });
            run.HasIndex(r => new { r.SubscriptionId, r.ScheduledFor }).IsUnique();
            // Finds the few runs still running (the interrupted-run sweep) without reading the whole history.
            run.HasIndex(r => r.CreatedAt).HasFilter("status = 'running'");
        });
    }
}
