using CmpWaldurAdapter.Knowledge.Sources;

namespace CmpWaldurAdapter.UnitTests.Knowledge;

public sealed class SourceSyncTests
{
    private static SourceDocument Doc(string id, string version) =>
        new(id, id, id + ".md", "text/markdown", [], version, null, null);

    [Fact]
    public void New_changed_gone_and_unchanged_documents_are_told_apart()
    {
        var stored = new Dictionary<string, string> { ["a"] = "1", ["b"] = "1", ["c"] = "1" };

        var plan = SourceSync.Plan(stored, [Doc("a", "1"), Doc("b", "2"), Doc("d", "1")]);

        Assert.Equal(["d"], plan.Add.Select(d => d.ExternalId));
        Assert.Equal(["b"], plan.Replace.Select(d => d.ExternalId));
        Assert.Equal(["c"], plan.Delete);
        Assert.Equal(["a"], plan.Unchanged.Select(d => d.ExternalId));
        Assert.False(plan.IsEmpty);
    }

    [Fact]
    public void The_first_sync_adds_everything()
    {
        var plan = SourceSync.Plan(new Dictionary<string, string>(), [Doc("a", "1"), Doc("b", "1")]);

        Assert.Equal(2, plan.Add.Count);
        Assert.Empty(plan.Replace);
        Assert.Empty(plan.Delete);
    }

    [Fact]
    public void An_empty_listing_deletes_everything_stored()
    {
        var plan = SourceSync.Plan(new Dictionary<string, string> { ["b"] = "1", ["a"] = "1" }, []);

        Assert.Equal(["a", "b"], plan.Delete);
    }

    [Fact]
    public void Nothing_changed_is_an_empty_plan()
    {
        var plan = SourceSync.Plan(new Dictionary<string, string> { ["a"] = "2024-03-01T09:01:00.000Z" }, [Doc("a", "2024-03-01T09:01:00.000Z")]);

        Assert.True(plan.IsEmpty);
        Assert.Single(plan.Unchanged);
    }

    [Fact]
    public void Versions_compare_exactly()
    {
        var plan = SourceSync.Plan(new Dictionary<string, string> { ["a"] = "etag:\"V1\"" }, [Doc("a", "etag:\"v1\"")]);

        Assert.Single(plan.Replace);
    }

    [Fact]
    public void A_document_without_a_version_is_always_replaced()
    {
        var plan = SourceSync.Plan(new Dictionary<string, string> { ["a"] = string.Empty }, [Doc("a", string.Empty)]);

        Assert.Single(plan.Replace);
    }

    [Fact]
    public void A_repeated_external_id_counts_once()
    {
        var plan = SourceSync.Plan(new Dictionary<string, string>(), [Doc("a", "1"), Doc("a", "2")]);

        Assert.Equal("1", Assert.Single(plan.Add).Version);
    }
}
