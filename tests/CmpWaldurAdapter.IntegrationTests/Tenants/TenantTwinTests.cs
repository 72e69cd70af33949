using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>
/// Langflow renames a clashing project or flow to "Name (1)" and RAGFlow a dataset to "name(1)", silently. A
/// create that comes back renamed, or a twin an earlier attempt left, is detected and deleted: one of each remains.
/// </summary>
public sealed class TenantTwinTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Creates_that_come_back_renamed_are_deleted_and_the_originals_kept()
    {
        // Each create finds its name taken by an earlier attempt whose answer was lost.
        _bed.Langflow.DuplicateNextCreate("projects");
        _bed.Langflow.DuplicateNextCreate("flows");
        _bed.Ragflow.DuplicateNextCreate();

        var resource = await _bed.SubscribeAsync();

        var subscription = await _bed.SubscriptionAsync(resource);
        var project = Assert.Single(_bed.Langflow.Projects, p => p.Name.StartsWith("cmp-", StringComparison.Ordinal));
        Assert.Equal(($"cmp-{resource:N}", project.Id.ToString()), (project.Name, subscription.LangflowProjectId));
        var flow = Assert.Single(_bed.Langflow.Flows);
        Assert.Equal(($"{TenantTestBed.OfferingName} cmp-{resource:N}", flow.Id.ToString()), (flow.Name, subscription.LangflowFlowId));
        var dataset = Assert.Single(_bed.Ragflow.Datasets);
        Assert.Equal(($"cmp-{resource:N}", dataset["id"]!.GetValue<string>()), (dataset["name"]!.GetValue<string>(), subscription.RagflowDatasetId));
        Assert.Equal(1, _bed.Langflow.Count("DELETE", "/api/v1/projects/.+"));
        Assert.Equal(1, _bed.Langflow.Count("DELETE", "/api/v1/flows/.+"));
        Assert.Equal(1, _bed.Ragflow.Count("DELETE", "/api/v1/datasets"));
    }

    [Fact]
    public async Task Twins_left_by_earlier_attempts_are_removed_on_create_and_on_terminate()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        var resource = _bed.Waldur.ResourceOf(order);
        var original = _bed.Ragflow.AddDataset($"cmp-{resource:N}");
        _bed.Ragflow.AddDataset($"cmp-{resource:N}(1)");
        _bed.Ragflow.AddDataset($"CMP-{resource:N}(2)");

        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(order)).Outcome);

        Assert.Equal([original], _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()));
        Assert.Equal(original, (await _bed.SubscriptionAsync(resource)).RagflowDatasetId);

        _bed.Ragflow.AddDataset($"cmp-{resource:N}(1)");
        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);
        Assert.Empty(_bed.Ragflow.Datasets);
        Assert.Equal(0, _bed.Ragflow.UnscopedDeletes);
    }

    [Fact]
    public async Task Another_buyers_dataset_is_never_touched_even_when_names_look_alike()
    {
        var other = _bed.Ragflow.AddDataset($"cmp-{Guid.NewGuid():N}");
        var resource = await _bed.SubscribeAsync();

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        Assert.Equal(OrderOutcome.Completed, (await _bed.ProcessUntilSettledAsync(terminate)).Outcome);

        Assert.Equal([other], _bed.Ragflow.Datasets.Select(d => d["id"]!.GetValue<string>()));
        Assert.DoesNotContain(_bed.Ragflow.Requests, r => (r.Body ?? string.Empty).Contains(other, StringComparison.Ordinal) || r.Url.Contains(other, StringComparison.Ordinal));
    }
}
