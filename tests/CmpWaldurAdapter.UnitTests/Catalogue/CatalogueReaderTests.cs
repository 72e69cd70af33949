using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Forms;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.Catalogue;

public sealed class CatalogueReaderTests
{
    private const string Valid = """
        slug: demo-agent
        name: Demo Agent
        category: Agents
        description: A demo.
        pricing:
          version: 2
          chat_message: 2
          rag_document: 5
        capabilities: [chat, knowledge_base]
        flow_template: flows/demo-agent.json
        demo_flow: flows/demo-agent.demo.json
        options:
          - key: agent_name
            type: string
            label: Agent name
            required: true
          - key: tone
            type: select_string
            label: Tone
            choices: [friendly, formal]
            default: friendly
        resource_options: [tone]
        components:
          - type: chat_credits
            name: Chat messages
          - type: rag_credits
            name: Documents
        plan:
          name: Pay as you go
          prices:
            chat_credits: "0.01"
            rag_credits: "0.02"
        """;

    [Fact]
    public void A_valid_file_becomes_an_entry()
    {
        var entry = CatalogueReader.Parse(Valid, "catalogue/demo-agent.yaml");

        Assert.Equal("demo-agent", entry.Slug);
        Assert.Equal(OfferingCategory.Agents, entry.Category);
        Assert.Equal(2, entry.Pricing.Version);
        Assert.Equal(2, entry.Pricing.PriceOf(ActionClass.ChatMessage));
        Assert.Equal(5, entry.Pricing.PriceOf(ActionClass.RagDocument));
        Assert.False(entry.Pricing.Offers(ActionClass.ImageGeneration));
        Assert.True(entry.Has(Capability.KnowledgeBase));
        Assert.Equal(FormFieldType.SelectString, entry.Options[1].Type);
        Assert.Equal(["tone"], entry.ResourceOptionsForm.Fields.Select(f => f.Key));
        Assert.Equal(0.02m, entry.Plan.Prices["rag_credits"]);
    }

    [Theory]
    [InlineData("category: Agents", "category: Robots", "demo-agent.yaml:3: category: 'Robots' is not one of: Agents, Apps, Assistants, Automations")]
    [InlineData("  chat_message: 2", "  chat_message: two", "demo-agent.yaml:7: pricing.chat_message: must be a whole number from 0 to 1000")]
    [InlineData("  chat_message: 2", "  chat_messages: 2", "demo-agent.yaml:7: pricing.chat_messages: is not a priced action")]
    [InlineData("    type: select_string", "    type: dropdown", "demo-agent.yaml:18: options[1].type: 'dropdown' is not one of")]
    [InlineData("    choices: [friendly, formal]", "    colour: red", "demo-agent.yaml:20: options[1].colour: unknown field")]
    [InlineData("resource_options: [tone]", "resource_options: [voice]", "demo-agent.yaml:22: resource_options: 'voice' is not one of the options")]
    [InlineData("    rag_credits: \"0.02\"", "    gpu_hours: \"0.02\"", "demo-agent.yaml:32: plan.prices.gpu_hours: is not one of the components")]
    [InlineData("flow_template: flows/demo-agent.json", "flow_template: ../secrets.json", "demo-agent.yaml:10: flow_template: must be a relative path")]
    [InlineData("slug: demo-agent", "slug: Demo Agent", "demo-agent.yaml:1: slug: must be lower-case words joined by hyphens")]
    [InlineData("name: Demo Agent\n", "", "demo-agent.yaml:1: name: is required")]
    public void A_malformed_file_is_refused_with_file_line_and_field(string from, string to, string expected)
    {
        var yaml = Valid.Replace(from, to, StringComparison.Ordinal);

        var error = Assert.Throws<CatalogueException>(() => CatalogueReader.Parse(yaml, "catalogue/demo-agent.yaml"));

        Assert.Contains(error.Problems, p => p.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void A_priced_action_needs_its_component()
    {
        var yaml = Valid.Replace("  - type: rag_credits\n    name: Documents\n", string.Empty, StringComparison.Ordinal)
            .Replace("    rag_credits: \"0.02\"\n", string.Empty, StringComparison.Ordinal);

        var error = Assert.Throws<CatalogueException>(() => CatalogueReader.Parse(yaml, "catalogue/demo-agent.yaml"));

        Assert.Contains(error.Problems, p => p.Contains("needs the component 'rag_credits' because pricing charges rag_document", StringComparison.Ordinal));
    }

    [Fact]
    public void Broken_yaml_is_reported_with_its_line()
    {
        var error = Assert.Throws<CatalogueException>(() => CatalogueReader.Parse("slug: a\nname: [unclosed\n", "x.yaml"));

        Assert.Single(error.Problems);
        Assert.StartsWith("x.yaml:", error.Problems[0]);
        Assert.Contains("not valid YAML", error.Problems[0]);
    }

    [Fact]
    public void Every_seed_offering_in_the_repository_parses()
    {
        var directory = UpstreamSpecs.PathOf("catalogue");
        var files = Directory.GetFiles(directory, "*.yaml");

        Assert.Equal(["code-assistant", "customer-support-agent", "research-agent", "ticket-triage-automation", "topic-assistant"],
            files.Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal));
        foreach (var file in files)
        {
            var entry = CatalogueReader.Parse(File.ReadAllText(file), file);
            // Chat offerings price a message; automations price a run instead.
            Assert.True(entry.Has(Capability.Automation)
                ? entry.Pricing.PriceOf(ActionClass.AutomationRun) >= 1
                : entry.Pricing.PriceOf(ActionClass.ChatMessage) is >= 1 and <= 3);
            Assert.All(entry.Options.Where(o => o.Default is not null), o =>
                Assert.True(entry.OrderForm.ValidateComplete([]).Values.ContainsKey(o.Key), $"{entry.Slug}: default of {o.Key} is valid"));
        }
    }
}
