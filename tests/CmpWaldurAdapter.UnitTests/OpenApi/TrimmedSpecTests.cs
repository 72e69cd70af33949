using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>
/// Proves each trimmed spec is a faithful subset of its pinned upstream: what it keeps is
/// identical, it is self-contained, and it holds exactly the operations the trim script lists.
/// Rows come from the script's SPECS table, so a spec joins once its operation list is filled in.
/// </summary>
public sealed class TrimmedSpecTests
{
    public static TheoryData<string> TrimmedSpecs
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var spec in TrimScript.ReadRepositoryScript().Where(s => s.OperationIds.Count > 0))
            {
                data.Add(spec.Name);
            }

            return data;
        }
    }

    [Fact]
    public void The_script_table_is_read_as_written()
    {
        var specs = TrimScript.ReadRepositoryScript();

        var waldur = Assert.Single(specs, s => s.Name == "waldur");
        Assert.Equal(UpstreamSpecs.WaldurPath, waldur.TrimmedPath);
        Assert.Equal(UpstreamSpecs.WaldurUpstreamPath, waldur.UpstreamPath);
        Assert.Equal("marketplace_orders_list", waldur.OperationIds[0]);
        Assert.Contains("marketplace_component_usages_set_usage", waldur.OperationIds);
        Assert.Contains("users_me_retrieve", waldur.OperationIds);
        Assert.Equal(waldur.OperationIds.Count, waldur.OperationIds.Distinct().Count());

        var langflow = Assert.Single(specs, s => s.Name == "langflow");
        Assert.Equal(UpstreamSpecs.LangflowPath, langflow.TrimmedPath);
        Assert.Equal(UpstreamSpecs.LangflowUpstreamPath, langflow.UpstreamPath);
        Assert.Empty(langflow.OperationIds); // Not trimmed yet; becomes a theory row once it is.
    }

    [Theory]
    [MemberData(nameof(TrimmedSpecs))]
    public void Top_level_fields_equal_upstream(string spec)
    {
        var (trimmed, upstream) = Load(spec);

        Assert.True(JsonNode.DeepEquals(trimmed["openapi"], upstream["openapi"]), $"openapi differs: {Difference(trimmed["openapi"], upstream["openapi"], "#/openapi")}");
        Assert.True(JsonNode.DeepEquals(trimmed["info"], upstream["info"]), $"info differs: {Difference(trimmed["info"], upstream["info"], "#/info")}");
        // Everything else the script copies (servers, security, ...) must be untouched as well.
        foreach (var (key, value) in trimmed.Where(p => p.Key is not ("paths" or "components")))
        {
            Assert.True(upstream.ContainsKey(key), $"top-level '{key}' is not upstream");
            Assert.True(JsonNode.DeepEquals(value, upstream[key]), $"top-level '{key}' differs: {Difference(value, upstream[key], "#/" + key)}");
        }
    }

    [Theory]
    [MemberData(nameof(TrimmedSpecs))]
    public void Every_operation_and_path_parameter_list_is_identical_to_upstream(string spec)
    {
        var (trimmed, upstream) = Load(spec);
        var problems = new List<string>();
        var operations = 0;

        foreach (var (path, item) in Section(trimmed, "paths"))
        {
            if (upstream["paths"]?[path] is not JsonObject upstreamItem)
            {
                problems.Add($"path {path} is not upstream");
                continue;
            }

            foreach (var (key, node) in (JsonObject)item!)
            {
                operations += key == "parameters" ? 0 : 1;
                var pointer = $"#/paths/{Escape(path)}/{key}";
                if (!upstreamItem.TryGetPropertyValue(key, out var upstreamNode))
                {
                    problems.Add($"{pointer} is not upstream");
                }
                else if (!JsonNode.DeepEquals(node, upstreamNode))
                {
                    problems.Add($"{pointer} differs: {Difference(node, upstreamNode, pointer)}");
                }
            }
        }

        Assert.True(operations > 0, "no operations compared");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Theory]
    [MemberData(nameof(TrimmedSpecs))]
    public void Every_component_is_identical_to_upstream(string spec)
    {
        var (trimmed, upstream) = Load(spec);
        var problems = new List<string>();
        var compared = 0;

        foreach (var (section, entries) in Section(trimmed, "components"))
        {
            foreach (var (name, node) in (JsonObject)entries!)
            {
                compared++;
                var pointer = $"#/components/{section}/{Escape(name)}";
                if (upstream["components"]?[section] is not JsonObject upstreamSection || !upstreamSection.TryGetPropertyValue(name, out var upstreamNode))
                {
                    problems.Add($"{pointer} is not upstream");
                }
                else if (!JsonNode.DeepEquals(node, upstreamNode))
                {
                    problems.Add($"{pointer} differs: {Difference(node, upstreamNode, pointer)}");
                }
            }
        }

        Assert.True(compared > 0, "no components compared");
        Assert.True(problems.Count == 0, string.Join(Environment.NewLine, problems));
    }

    [Theory]
    [MemberData(nameof(TrimmedSpecs))]
    public void Every_ref_resolves_inside_the_trimmed_file(string spec)
    {
        var document = OpenApiDocument.Load(UpstreamSpecs.PathOf(Definition(spec).TrimmedPath));
        var references = new HashSet<string>(StringComparer.Ordinal);
        CollectRefs(document.Root, references);

        Assert.NotEmpty(references);
        var broken = references.Where(r => !document.TryResolve(r, out var target) || target is null).ToList();
        Assert.True(broken.Count == 0, "unresolved: " + string.Join(", ", broken));
    }

    [Theory]
    [MemberData(nameof(TrimmedSpecs))]
    public void Components_are_exactly_those_the_operations_reach(string spec)
    {
        var document = OpenApiDocument.Load(UpstreamSpecs.PathOf(Definition(spec).TrimmedPath));
        var root = document.Root;

        // The script's closure: refs reachable from the paths, plus the security schemes used.
        var reachable = new HashSet<string>(StringComparer.Ordinal);
        var pending = new HashSet<string>(StringComparer.Ordinal);
        CollectRefs(root["paths"], pending);
        while (pending.Count > 0)
        {
            var reference = pending.First();
            pending.Remove(reference);
            if (reachable.Add(reference) && document.TryResolve(reference, out var target))
            {
                CollectRefs(target, pending);
            }
        }

        foreach (var operation in Section(root, "paths").SelectMany(p => ((JsonObject)p.Value!).Select(o => o.Value)).OfType<JsonObject>())
        {
            foreach (var requirement in (operation["security"] as JsonArray ?? []).OfType<JsonObject>())
            {
                reachable.UnionWith(requirement.Select(r => $"#/components/securitySchemes/{r.Key}"));
            }
        }

        var kept = Section(root, "components")
            .SelectMany(s => ((JsonObject)s.Value!).Select(c => $"#/components/{s.Key}/{c.Key}"))
            .ToHashSet(StringComparer.Ordinal);
        var expected = reachable.Where(r => r.StartsWith("#/components/", StringComparison.Ordinal));

        Assert.Equal(expected.Order(StringComparer.Ordinal), kept.Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(TrimmedSpecs))]
    public void Operation_ids_equal_the_script_list(string spec)
    {
        var definition = Definition(spec);
        var (trimmed, _) = Load(spec);

        var operationIds = Section(trimmed, "paths")
            .SelectMany(p => ((JsonObject)p.Value!).Where(o => o.Key != "parameters").Select(o => o.Value?["operationId"]?.GetValue<string>()))
            .ToList();

        Assert.DoesNotContain(null, operationIds);
        Assert.Equal(operationIds.Count, operationIds.Distinct().Count());
        Assert.Equal(definition.OperationIds.Order(StringComparer.Ordinal), operationIds.Order(StringComparer.Ordinal));
    }

    private static TrimmedSpecDefinition Definition(string spec) =>
        TrimScript.ReadRepositoryScript().Single(s => s.Name == spec);

    private static (JsonObject Trimmed, JsonObject Upstream) Load(string spec)
    {
        var definition = Definition(spec);
        return (OpenApiDocument.Load(UpstreamSpecs.PathOf(definition.TrimmedPath)).Root,
            OpenApiDocument.Load(UpstreamSpecs.PathOf(definition.UpstreamPath)).Root);
    }

    private static IEnumerable<KeyValuePair<string, JsonNode?>> Section(JsonObject root, string name) =>
        root[name] as JsonObject ?? [];

    private static void CollectRefs(JsonNode? node, HashSet<string> found)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, value) in obj)
                {
                    if (key == "$ref" && value is JsonValue reference && reference.TryGetValue<string>(out var text))
                    {
                        found.Add(text);
                    }
                    else
                    {
                        CollectRefs(value, found);
                    }
                }

                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    CollectRefs(item, found);
                }

                break;
        }
    }

    private static string Escape(string token) => token.Replace("~", "~0", StringComparison.Ordinal).Replace("/", "~1", StringComparison.Ordinal);

    // The first place two trees disagree, so a failure points at the line to look at.
    private static string Difference(JsonNode? a, JsonNode? b, string pointer)
    {
        switch (a, b)
        {
            case (JsonObject x, JsonObject y):
                foreach (var (key, value) in x)
                {
                    if (!y.TryGetPropertyValue(key, out var other))
                    {
                        return $"{pointer}/{Escape(key)} only in trimmed";
                    }

                    if (!JsonNode.DeepEquals(value, other))
                    {
                        return Difference(value, other, $"{pointer}/{Escape(key)}");
                    }
                }

                return y.FirstOrDefault(p => !x.ContainsKey(p.Key)) is { Key: { } missing } ? $"{pointer}/{Escape(missing)} only upstream" : pointer;
            case (JsonArray x, JsonArray y) when x.Count == y.Count:
                for (var i = 0; i < x.Count; i++)
                {
                    if (!JsonNode.DeepEquals(x[i], y[i]))
                    {
                        return Difference(x[i], y[i], $"{pointer}/{i}");
                    }
                }

                return pointer;
            default:
                return $"{pointer}: {a?.ToJsonString() ?? "null"} vs {b?.ToJsonString() ?? "null"}";
        }
    }
}
