using CmpWaldurAdapter.Knowledge.Connectors;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Knowledge;

/// <summary>The knowledge-base tables: documents and connectors, both owned by a subscription.</summary>
internal static class KnowledgeModel
{
    public static void Configure(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<KnowledgeConnector>(connector =>
        {
            connector.ToTable("knowledge_connectors");
            connector.HasKey(c => c.Id);
            connector.Property(c => c.Id).ValueGeneratedNever();
            connector.Property(c => c.Kind).HasConversion<string>().HasMaxLength(20);
            connector.Property(c => c.Description).HasMaxLength(2000);
            connector.Property(c => c.LastError).HasMaxLength(2000);
            connector.Property(c => c.Version).IsConcurrencyToken();
            connector.HasOne<Subscription>().WithMany().HasForeignKey(c => c.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
            connector.HasIndex(c => c.SubscriptionId);
        });

        modelBuilder.Entity<KnowledgeDocument>(document =>
        {
            document.ToTable("knowledge_documents");
            document.HasKey(d => d.Id);
            document.Property(d => d.Id).ValueGeneratedNever();
            document.Property(d => d.Source).HasConversion<string>().HasMaxLength(20);
            document.Property(d => d.ExternalId).HasMaxLength(1000);
            document.Property(d => d.SourceVersion).HasMaxLength(200);
            document.Property(d => d.SourceUrl).HasMaxLength(2000);
            document.Property(d => d.Name).HasMaxLength(500);
            document.Property(d => d.RagflowDocumentId).HasMaxLength(64);
            document.Property(d => d.Status).HasMaxLength(20);
            document.Property(d => d.Error).HasMaxLength(2000);
            document.Property(d => d.Version).IsConcurrencyToken();
            document.HasOne<Subscription>().WithMany().HasForeignKey(d => d.SubscriptionId).OnDelete(DeleteBehavior.Cascade);
            document.HasOne<KnowledgeConnector>().WithMany().HasForeignKey(d => d.ConnectorId).OnDelete(DeleteBehavior.Restrict);
            document.HasIndex(d => new { d.SubscriptionId, d.RagflowDocumentId }).IsUnique();
            document.HasIndex(d => d.Status);
            document.HasIndex(d => d.ConnectorId);
        });
    }
}
