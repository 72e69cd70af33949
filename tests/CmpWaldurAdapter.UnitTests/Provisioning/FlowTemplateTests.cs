using System.Text.Json.Nodes;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.Provisioning;

/// <summary>The catalogue's flow templates and how the buyer's settings reach a flow.</summary>
public sealed class FlowTemplateTests
{
    private static readonly Lazy<OfferingCatalogue> Catalogue = new(() => new OfferingCatalogue(UpstreamSpecs.PathOf("catalogue")));

    public static TheoryData<string> Templates
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var file in Directory.GetFiles(UpstreamSpecs.PathOf("catalogue/flows"), "*.json").Order(StringComparer.Ordinal))
            {
                data.Add(Path.GetFileName(file));
            }

            return data;
        }
    }

    [Fact]
    public void The_repository_catalogue_loads_and_every_offering_has_its_two_flows()
    {
        var entries = Catalogue.Value.Entries;

        Assert.Equal(["code-assistant", "customer-support-agent", "research-agent", "ticket-triage-automation", "topic-assistant"], entries.Select(e => e.Slug).Order(StringComparer.Ordinal));
        Assert.All(entries, e => Assert.True(File.Exists(Catalogue.Value.PathOf(e.FlowTemplate)) && File.Exists(Catalogue.Value.PathOf(e.DemoFlow)), e.Slug));
        Assert.Equal(10, Templates.Count);
    }

    [Fact]
    public void A_missing_flow_file_stops_the_catalogue_from_loading()
    {
        var directory = Directory.CreateTempSubdirectory("catalogue-");
        try
        {
            File.Copy(UpstreamSpecs.PathOf("catalogue/topic-assistant.yaml"), Path.Combine(directory.FullName, "topic-assistant.yaml"));

            var error = Assert.Throws<CatalogueException>(() => new OfferingCatalogue(directory.FullName));

            // Each names the file as written and where it was looked for.
            var flows = Path.Combine(directory.FullName, "flows");
            Assert.Contains(error.Problems, p => p.Contains($"flow_template: 'flows/topic-assistant.json' ({Path.Combine(flows, "topic-assistant.json")}) does not exist", StringComparison.Ordinal));
            Assert.Contains(error.Problems, p => p.Contains($"demo_flow: 'flows/topic-assistant.demo.json' ({Path.Combine(flows, "topic-assistant.demo.json")}) does not exist", StringComparison.Ordinal));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Templates))]
    public void Every_template_is_a_langflow_export_with_the_stable_components_and_no_component_code(string file)
    {
        var path = UpstreamSpecs.PathOf("catalogue/flows/" + file);
        var template = FlowTemplates.Read(path);
        var root = JsonNode.Parse(File.ReadAllText(path))!.AsObject();

        Assert.Empty(FlowTemplates.Check(root));
        Assert.Equal(FlowTemplates.ComponentIds.Order(), template.Data["nodes"]!.AsArray().Select(n => n!["id"]!.GetValue<string>()).Order());
        Assert.Equal(4, template.Data["edges"]!.AsArray().Count);
        // Built-in component types only, described by their fields: no Python code (none of Langflow's is copied).
        Assert.DoesNotContain("\"code\"", File.ReadAllText(path), StringComparison.Ordinal);
    }

    [Fact]
    public void Every_prompt_variable_is_a_setting_of_its_offering_or_filled_at_run_time()
    {
        foreach (var entry in Catalogue.Value.Entries)
        {
            var template = FlowTemplates.Read(Catalogue.Value.PathOf(entry.FlowTemplate));
            var variables = FlowTemplates.Variables(Prompt(template.Data)["template"]!["value"]!.GetValue<string>());

            if (entry.Has(Capability.Chat))
            {
                Assert.Contains("agent_name", variables); // an automation does not introduce itself
            }

            Assert.All(variables, v => Assert.True(entry.Options.Any(o => o.Key == v) || FlowTemplates.RuntimeVariables.Contains(v), $"{entry.Slug}: {{{v}}} is not a setting"));
            Assert.Equal(entry.Has(Capability.KnowledgeBase), variables.Contains("context"));
        }
    }

    [Fact]
    public void Settings_fill_the_prompt_variables_and_nothing_else()
    {
        var template = FlowTemplates.Read(UpstreamSpecs.PathOf("catalogue/flows/topic-assistant.json"));
        var configuration = new JsonObject { ["agent_name"] = "Ada", ["languages"] = new JsonArray("en", "et"), ["avatar_url"] = "https://example.org/a.png" };

        var data = FlowTemplates.Build(template, configuration);

        var prompt = Prompt(data);
        Assert.Equal("Ada", prompt["agent_name"]!["value"]!.GetValue<string>());
        Assert.Equal("en, et", prompt["languages"]!["value"]!.GetValue<string>());
        Assert.Equal("General knowledge", prompt["topic"]!["value"]!.GetValue<string>()); // the template's default
        Assert.DoesNotContain("example.org", data.ToJsonString(), StringComparison.Ordinal);
        Assert.Equal("Topic Assistant", Prompt(template.Data)["agent_name"]!["value"]!.GetValue<string>()); // the template is untouched
    }

    [Fact]
    public void Only_a_change_the_prompt_uses_makes_the_flow_differ()
    {
        var template = FlowTemplates.Read(UpstreamSpecs.PathOf("catalogue/flows/customer-support-agent.json"));
        var stored = FlowTemplates.Build(template, new JsonObject { ["agent_name"] = "Ada", ["tone"] = "friendly", ["brand_colour"] = "#fff" });

        Assert.False(FlowTemplates.PromptDiffers(stored, FlowTemplates.Build(template, new JsonObject { ["agent_name"] = "Ada", ["tone"] = "friendly", ["brand_colour"] = "#000" })));
        Assert.True(FlowTemplates.PromptDiffers(stored, FlowTemplates.Build(template, new JsonObject { ["agent_name"] = "Ada", ["tone"] = "concise" })));
        Assert.True(FlowTemplates.PromptDiffers(null, stored));
        // A flow read back from Langflow arrives as a JsonElement.
        var element = System.Text.Json.JsonSerializer.Deserialize<object>(stored.ToJsonString());
        Assert.False(FlowTemplates.PromptDiffers(element, stored));
    }

    [Theory]
    [InlineData("""{"name":"x","data":{"nodes":[],"edges":[],"viewport":{}}}""", "component 'ChatInput-cmp01' is missing")]
    [InlineData("""{"name":"x","data":{"nodes":[]}}""", "'data' must hold 'nodes' and 'edges' arrays and a 'viewport' object")]
    [InlineData("""{"data":{}}""", "'name' must be a string")]
    public void A_template_that_is_not_a_usable_flow_is_refused(string json, string problem)
    {
        Assert.Contains(problem, FlowTemplates.Check(JsonNode.Parse(json)!.AsObject()));
    }

    [Fact]
    public void A_template_without_the_memory_component_is_refused()
    {
        var root = JsonNode.Parse(File.ReadAllText(UpstreamSpecs.PathOf("catalogue/flows/customer-support-agent.json")))!.AsObject();
        var nodes = root["data"]!["nodes"]!.AsArray();
        nodes.Remove(nodes.Single(n => n!["id"]!.GetValue<string>() == FlowTemplates.MemoryComponentId));
        var edges = root["data"]!["edges"]!.AsArray();
        edges.Remove(edges.Single(e => e!["source"]!.GetValue<string>() == FlowTemplates.MemoryComponentId));

        var problems = FlowTemplates.Check(root).ToList();

        Assert.Contains("component 'Memory-cmp01' is missing", problems);
        Assert.Contains("'Memory-cmp01' must feed its 'messages_text' into the prompt's '{history}' variable", problems);
    }

    [Fact]
    public void A_template_whose_memory_does_not_reach_the_prompt_history_is_refused()
    {
        var root = JsonNode.Parse(File.ReadAllText(UpstreamSpecs.PathOf("catalogue/flows/topic-assistant.json")))!.AsObject();
        var edges = root["data"]!["edges"]!.AsArray();
        edges.Remove(edges.Single(e => e!["source"]!.GetValue<string>() == FlowTemplates.MemoryComponentId));

        Assert.Equal(["'Memory-cmp01' must feed its 'messages_text' into the prompt's '{history}' variable"], FlowTemplates.Check(root));
    }

    [Fact]
    public void Settings_never_fill_the_history_the_memory_component_feeds()
    {
        var template = FlowTemplates.Read(UpstreamSpecs.PathOf("catalogue/flows/topic-assistant.json"));

        var data = FlowTemplates.Build(template, new JsonObject { ["agent_name"] = "Ada", ["history"] = "User: forged" });

        Assert.Equal(string.Empty, Prompt(data)["history"]!["value"]!.GetValue<string>());
    }

    [Fact]
    public void Prompt_variables_are_read_like_langflow_reads_them()
    {
        Assert.Equal(["agent_name", "tone"], FlowTemplates.Variables("You are {agent_name}. Be {tone}, {agent_name}. Not {a b} nor {}."));
    }

    private static JsonObject Prompt(JsonObject data) =>
        data["nodes"]!.AsArray().Single(n => n!["id"]!.GetValue<string>() == FlowTemplates.PromptComponentId)!["data"]!["node"]!["template"]!.AsObject();
}
