using System.Text.Json;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

public sealed class TenantAdoptionOnSqliteTests() : TenantAdoptionTests(DatabaseProvider.Sqlite);

public sealed class TenantAdoptionOnPostgresTests() : TenantAdoptionTests(DatabaseProvider.Postgres);

/// <summary>
/// <c>ragflow-dataset</c> finding the subscription's dataset already in RAGFlow, unknown to the subscription's row
/// (the adapter's database was lost or restored): it records the documents the database has no record of, reading
/// every page and only that dataset, exactly once, leaves records already there alone, and a RAGFlow error answer
/// while listing defers the order with nothing recorded; on each database the adapter supports.
/// </summary>
public abstract class TenantAdoptionTests(DatabaseProvider provider) : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync(provider);
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Every_page_of_the_adopted_dataset_is_recorded_and_no_other_dataset_is_read()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(order);
        var dataset = _bed.Ragflow.AddDataset($"cmp-{resource:N}");
        var ids = Enumerable.Range(0, 2 * KnowledgeBase.ListPageSize + 30).Select(i => _bed.Ragflow.AddDocument(dataset, $"page-{i:000}.md", $"Document {i}.")).ToList();
        var neighbour = _bed.Ragflow.AddDataset($"cmp-{Guid.NewGuid():N}");
        _bed.Ragflow.AddDocument(neighbour, "someone-elses.md", "Not this buyer's.");

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(order)).Outcome);

        var subscription = await _bed.SubscriptionAsync(resource);
        Assert.Equal(dataset, subscription.RagflowDatasetId);
        var rows = await RowsAsync(subscription.Id);
        Assert.Equal(ids.Order(), rows.Keys.Order());
        Assert.All(rows.Values, row => Assert.Equal((ParseStates.Done, 0L, true), (row.Status, row.CreditsCharged, row.ChargedAt is not null)));
        Assert.Equal(3, _bed.Ragflow.Count("GET", $"/api/v1/datasets/{dataset}/documents"));
        Assert.Equal(0, _bed.Ragflow.Count("GET", $"/api/v1/datasets/{neighbour}/documents"));
    }

    [Fact]
    public async Task Adopting_again_records_nothing_twice_and_leaves_records_already_there_as_they_are()
    {
        var resource = await _bed.SubscribeAsync();
        var subscription = await _bed.SubscriptionAsync(resource);
        var dataset = subscription.RagflowDatasetId!;
        // A document the adapter has a record of, in a state of its own (its parse followed, its hold not yet settled) ...
        var known = _bed.Ragflow.AddDocument(dataset, "kept.md", "Recorded before.");
        var now = DateTimeOffset.UtcNow;
        await _bed.QueryAsync(db =>
        {
            db.KnowledgeDocuments.Add(new KnowledgeDocument
            {
                Id = Guid.NewGuid(),
                SubscriptionId = subscription.Id,
                Source = DocumentSource.Url,
                SourceUrl = "https://example.org/kept",
                Name = "kept-as-recorded.md",
                RagflowDocumentId = known,
                SizeBytes = 99,
                Status = ParseStates.Running,
                Progress = 0.25,
                ParseStartedAt = now,
                ParseAttempts = 1,
                CreditReservationId = Guid.NewGuid(),
                CreatedAt = now,
                UpdatedAt = now,
            });
            return db.SaveChangesAsync();
        });
        // ... and one only RAGFlow remembers.
        var lost = _bed.Ragflow.AddDocument(dataset, "lost.md", "Only RAGFlow remembers this.");
        var before = await RowsAsync(subscription.Id);

        await RunDatasetStepWithoutItsRecordAsync(resource);

        var after = await RowsAsync(subscription.Id);
        Assert.Equal(new[] { known, lost }.Order(), after.Keys.Order());
        Assert.Equal(Snapshot(before[known]), Snapshot(after[known]));
        var recovered = after[lost];
        Assert.Equal(("lost.md", DocumentSource.Upload, ParseStates.Done, 0L, (Guid?)null), (recovered.Name, recovered.Source, recovered.Status, recovered.CreditsCharged, recovered.CreditReservationId));
        Assert.NotNull(recovered.ChargedAt);
        Assert.Equal(dataset, (await _bed.SubscriptionAsync(resource)).RagflowDatasetId);

        // The step runs again as if its completion had never been saved: nothing new, nothing changed.
        await RunDatasetStepWithoutItsRecordAsync(resource);

        var again = await RowsAsync(subscription.Id);
        Assert.Equal(after.Keys.Order(), again.Keys.Order());
        Assert.All(after, pair => Assert.Equal(Snapshot(pair.Value), Snapshot(again[pair.Key])));
        Assert.Equal(2, _bed.Ragflow.Count("GET", $"/api/v1/datasets/{dataset}/documents"));
    }

    [Fact]
    public async Task A_dataset_the_subscription_already_records_is_not_listed_when_the_step_runs_again()
    {
        var resource = await _bed.SubscribeAsync();
        var dataset = (await _bed.SubscriptionAsync(resource)).RagflowDatasetId!;
        // An upload in flight: in RAGFlow, its record not yet written. It must not be recorded as already paid for.
        _bed.Ragflow.AddDocument(dataset, "uploading.md", "Being uploaded right now.", run: "UNSTART");

        await RunDatasetStepAsync(resource, forgetDataset: false);

        Assert.Empty(await RowsAsync((await _bed.SubscriptionAsync(resource)).Id));
        Assert.Equal(0, _bed.Ragflow.Count("GET", $"/api/v1/datasets/{dataset}/documents"));
    }

    [Theory]
    [InlineData("""{"code":100,"message":"ConnectionError('Elasticsearch is unreachable')"}""")]
    [InlineData("""{"code":102,"message":"Database operation failed"}""")]
    public async Task A_ragflow_error_answer_while_listing_defers_the_order_and_records_nothing(string error)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(order);
        var dataset = _bed.Ragflow.AddDataset($"cmp-{resource:N}");
        var document = _bed.Ragflow.AddDocument(dataset, "handbook.md", "We open at nine.");
        // HTTP 200 with a non-zero code, on every attempt of one run of the step.
        _bed.Ragflow.Fail("GET", $"/api/v1/datasets/{dataset}/documents", 200, times: 3, body: error);

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Equal("executing", _bed.Waldur.OrderState(order));
        var waiting = await _bed.SubscriptionAsync(resource);
        Assert.Equal((SubscriptionState.Provisioning, (string?)null), (waiting.State, waiting.RagflowDatasetId));
        Assert.Empty(await RowsAsync(waiting.Id));
        Assert.False(await _bed.QueryAsync(db => db.Orders.AnyAsync(o => o.OrderUuid == order && o.CompletedSteps.Contains(LangflowRagflowProvisioner.RagflowDatasetStep))));

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(order)).Outcome);

        Assert.Equal(0, _bed.Waldur.Count("POST", ".*/set_state_erred/"));
        var row = Assert.Single((await RowsAsync(waiting.Id)).Values);
        Assert.Equal((document, "handbook.md", ParseStates.Done, 0L), (row.RagflowDocumentId, row.Name, row.Status, row.CreditsCharged));
        Assert.Equal(dataset, (await _bed.SubscriptionAsync(resource)).RagflowDatasetId);
    }

    /// <summary>The step for a subscription whose row has lost the dataset's id (restored from before it was recorded, or the step's completion was never saved).</summary>
    private Task RunDatasetStepWithoutItsRecordAsync(Guid resource) => RunDatasetStepAsync(resource, forgetDataset: true);

    /// <summary>Runs <c>ragflow-dataset</c> as an order or the reconciler would, and saves what it changed.</summary>
    private async Task RunDatasetStepAsync(Guid resource, bool forgetDataset)
    {
        if (forgetDataset)
        {
            await _bed.QueryAsync(db => db.Subscriptions.Where(s => s.ResourceUuid == resource)
                .ExecuteUpdateAsync(set => set.SetProperty(s => s.RagflowDatasetId, (string?)null)));
        }

        await using var db = await _bed.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync();
        var subscription = await db.Subscriptions.SingleAsync(s => s.ResourceUuid == resource);
        var context = new ProvisioningContext
        {
            Db = db,
            Order = new OrderDetails { Marketplace_resource_uuid = resource, Offering_uuid = subscription.OfferingUuid },
            Subscription = subscription,
            Workspace = await db.Workspaces.SingleAsync(w => w.Id == subscription.WorkspaceId),
            Configuration = [],
            Notes = [],
        };
        var step = _bed.Services.GetServices<ITenantProvisioner>().SelectMany(p => p.StepsFor(OrderType.Create))
            .Single(s => s.Name == LangflowRagflowProvisioner.RagflowDatasetStep);
        await step.ExecuteAsync(context, CancellationToken.None);
        await db.SaveChangesAsync();
    }

    private Task<Dictionary<string, KnowledgeDocument>> RowsAsync(Guid subscriptionId) =>
        _bed.QueryAsync(db => db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscriptionId).ToDictionaryAsync(d => d.RagflowDocumentId));

    private static string Snapshot(KnowledgeDocument row) => JsonSerializer.Serialize(row);
}
