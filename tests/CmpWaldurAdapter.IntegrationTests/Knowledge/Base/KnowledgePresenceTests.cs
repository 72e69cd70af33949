using System.Net;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Knowledge;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Base;

/// <summary>Whether a knowledge base holds documents (its messages search it only then), as the chat pipeline learns it.</summary>
public sealed class KnowledgePresenceTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 10, 12, 0, 0, TimeSpan.Zero);

    private KnowledgeTestBed _bed = null!;

    private KnowledgePresence Presence => _bed.Server.Services.GetRequiredService<KnowledgePresence>();

    public async Task InitializeAsync()
    {
        _bed = await KnowledgeTestBed.CreateAsync(DatabaseProvider.Sqlite, Start);
        await _bed.StartAsync(credits: 100);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_document_uploaded_through_this_server_counts_at_once()
    {
        Assert.False(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));

        var (status, _) = await _bed.UploadAsync(("faq.md", "We open at nine."));

        Assert.Equal(HttpStatusCode.Created, status);
        Assert.True(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));
    }

    [Fact]
    public async Task Documents_recorded_from_an_adopted_dataset_count_at_once()
    {
        Assert.False(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));
        _bed.Ragflow.AddDocument(_bed.DatasetId, "handbook.md", "We open at nine.");

        var recorded = await _bed.Server.Services.GetRequiredService<AdoptedDocuments>().RecordAsync(_bed.Subscription.Id, _bed.DatasetId, CancellationToken.None);

        Assert.Equal(1, recorded);
        Assert.True(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));
    }

    [Fact]
    public async Task A_document_recorded_by_another_replica_counts_once_the_empty_answer_is_a_few_seconds_old()
    {
        var (other, _, _) = await _bed.AddSubscriptionAsync(credits: 0);
        Assert.False(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));
        Assert.False(await Presence.HasDocumentsAsync(other.Id, CancellationToken.None));

        await _bed.Server.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().ParsedDocumentAsync(_bed.Subscription.Id);
        Assert.False(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));
        _bed.Credits.Clock!.Advance(KnowledgePresence.EmptyLifetime);

        Assert.True(await Presence.HasDocumentsAsync(_bed.Subscription.Id, CancellationToken.None));
        Assert.False(await Presence.HasDocumentsAsync(other.Id, CancellationToken.None));
    }
}
