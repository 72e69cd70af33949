using System.Globalization;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Forms;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace CmpWaldurAdapter.Catalogue;

/// <summary>A catalogue file that does not follow the schema; every problem names the file, line and field.</summary>
public sealed class CatalogueException(IReadOnlyList<string> problems)
    : Exception("The catalogue is invalid:" + Environment.NewLine + string.Join(Environment.NewLine, problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>
/// Reads and checks one catalogue YAML file. The schema is strict: unknown fields, wrong types and
/// dangling references are errors, reported all at once as <c>file:line: field: problem</c>.
/// </summary>
public static partial class CatalogueReader
{
    private static readonly string[] TopLevelFields =
        ["slug", "name", "category", "description", "pricing", "capabilities", "flow_template", "demo_flow", "options", "resource_options", "components", "plan"];

    private static readonly string[] OptionFields = ["key", "type", "label", "required", "choices", "default", "min", "max", "max_length", "help_text"];

    public static CatalogueEntry Parse(string yaml, string file)
    {
        var problems = new List<string>();
        YamlMappingNode root;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode mapping)
            {
                throw new CatalogueException([$"{file}:1: the file must hold exactly one mapping (an offering)."]);
            }

            root = mapping;
        }
        catch (YamlException exception)
        {
            throw new CatalogueException([$"{file}:{exception.Start.Line}: not valid YAML: {exception.Message}"]);
        }

        var reader = new NodeReader(file, problems);
        reader.RejectUnknown(root, TopLevelFields, string.Empty);

        var slug = reader.String(root, "slug", required: true) ?? string.Empty;
        if (slug.Length > 0 && !SlugPattern().IsMatch(slug))
        {
            reader.Problem(root, "slug", "must be lower-case words joined by hyphens");
        }

        var expectedSlug = Path.GetFileNameWithoutExtension(file);
        if (slug.Length > 0 && !string.Equals(slug, expectedSlug, StringComparison.Ordinal))
        {
            reader.Problem(root, "slug", $"must match the file name ('{expectedSlug}')");
        }

        var name = reader.String(root, "name", required: true, maxLength: 150) ?? string.Empty;
        var category = reader.Enum<OfferingCategory>(root, "category", c => c.ToString());
        var description = reader.String(root, "description", required: true, maxLength: 4000) ?? string.Empty;
        var pricing = ReadPricing(reader, root);
        var capabilities = reader.List(root, "capabilities", required: true)
            .Select(item => reader.EnumValue<Capability>(item, "capabilities", SnakeCase))
            .OfType<Capability>().Distinct().ToList();
        var flowTemplate = reader.RelativeJsonPath(root, "flow_template") ?? string.Empty;
        var demoFlow = reader.RelativeJsonPath(root, "demo_flow") ?? string.Empty;
        var options = reader.List(root, "options", required: true).Select((item, i) => ReadOption(reader, item, $"options[{i}]")).OfType<FormField>().ToList();
        foreach (var duplicate in options.GroupBy(o => o.Key).Where(g => g.Count() > 1))
        {
            reader.Problem(root, "options", $"key '{duplicate.Key}' appears more than once");
        }

        var resourceOptions = new List<string>();
        foreach (var item in reader.List(root, "resource_options", required: false))
        {
            var key = reader.Scalar(item, "resource_options");
            if (key is not null && options.All(o => o.Key != key))
            {
                reader.Problem(item, "resource_options", $"'{key}' is not one of the options");
            }
            else if (key is not null)
            {
                resourceOptions.Add(key);
            }
        }

        var components = reader.List(root, "components", required: true).Select((item, i) => ReadComponent(reader, item, $"components[{i}]")).OfType<UsageComponent>().ToList();
        foreach (var action in pricing.Credits.Keys)
        {
            var component = ActionClasses.Component(action);
            if (components.All(c => c.Type != component))
            {
                reader.Problem(root, "components", $"needs the component '{component}' because pricing charges {ActionClasses.Key(action)}");
            }
        }

        var plan = ReadPlan(reader, root, components);

        if (problems.Count > 0)
        {
            throw new CatalogueException(problems);
        }

        return new CatalogueEntry
        {
            Slug = slug,
            Name = name,
            Category = category ?? OfferingCategory.Agents,
            Description = description,
            Pricing = pricing,
            Capabilities = capabilities,
            FlowTemplate = flowTemplate,
            DemoFlow = demoFlow,
            Options = options,
            ResourceOptions = resourceOptions,
            Components = components,
            Plan = plan,
            SourceFile = file,
        };
    }

    private static PriceBook ReadPricing(NodeReader reader, YamlMappingNode root)
    {
        var credits = new Dictionary<ActionClass, long>();
        var version = 1;
        if (reader.Mapping(root, "pricing", required: true) is not { } pricing)
        {
            return new PriceBook(version, credits);
        }

        foreach (var (keyNode, valueNode) in pricing.Children)
        {
            var key = ((YamlScalarNode)keyNode).Value ?? string.Empty;
            if (key == "version")
            {
                version = (int)(reader.Integer(valueNode, "pricing.version", 1, 100_000) ?? 1);
            }
            else if (ActionClasses.TryParseKey(key, out var action))
            {
                if (reader.Integer(valueNode, $"pricing.{key}", 0, 1000) is { } price)
                {
                    credits[action] = price;
                }
            }
            else
            {
                reader.Problem(keyNode, $"pricing.{key}", "is not a priced action (chat_message, rag_document, image_generation, voice_interaction, automation_run) or version");
            }
        }

        return new PriceBook(version, credits);
    }

    private static FormField? ReadOption(NodeReader reader, YamlNode node, string path)
    {
        if (node is not YamlMappingNode option)
        {
            reader.Problem(node, path, "must be a mapping with key, type and label");
            return null;
        }

        reader.RejectUnknown(option, OptionFields, path + ".");
        var key = reader.String(option, "key", required: true, prefix: path + ".");
        if (key is not null && !OptionKeyPattern().IsMatch(key))
        {
            reader.Problem(option, path + ".key", "must be snake_case");
        }

        var type = reader.EnumCustom<FormFieldType>(option, "type", path + ".", text => FormFieldTypes.TryParse(text, out var t) ? t : null,
            "string, text, html_text, integer, money, boolean, select_string, select_string_multi, date, time");
        var label = reader.String(option, "label", required: true, prefix: path + ".", maxLength: 150);
        var choices = reader.List(option, "choices", required: false, prefix: path + ".").Select(c => reader.Scalar(c, path + ".choices")).OfType<string>().ToList();
        if (type is FormFieldType.SelectString or FormFieldType.SelectStringMulti && choices.Count == 0)
        {
            reader.Problem(option, path + ".choices", "are required for a select field");
        }

        var defaultValue = option.Children.TryGetValue(new YamlScalarNode("default"), out var d) ? reader.Scalar(d, path + ".default") : null;
        if (defaultValue is not null && choices.Count > 0 && type == FormFieldType.SelectString && !choices.Contains(defaultValue))
        {
            reader.Problem(d!, path + ".default", $"'{defaultValue}' is not one of the choices");
        }

        var min = option.Children.TryGetValue(new YamlScalarNode("min"), out var minNode) ? reader.Integer(minNode, path + ".min", long.MinValue, long.MaxValue) : null;
        var max = option.Children.TryGetValue(new YamlScalarNode("max"), out var maxNode) ? reader.Integer(maxNode, path + ".max", long.MinValue, long.MaxValue) : null;
        var maxLength = option.Children.TryGetValue(new YamlScalarNode("max_length"), out var lengthNode) ? reader.Integer(lengthNode, path + ".max_length", 1, 100_000) : null;
        var required = option.Children.TryGetValue(new YamlScalarNode("required"), out var requiredNode) && reader.Boolean(requiredNode, path + ".required");
        var help = reader.String(option, "help_text", required: false, prefix: path + ".", maxLength: 1000);
        if (key is null || type is null || label is null)
        {
            return null;
        }

        return new FormField(key, type.Value, label, required, choices.Count > 0 ? choices : null, min, max, defaultValue, (int?)maxLength, help);
    }

    private static UsageComponent? ReadComponent(NodeReader reader, YamlNode node, string path)
    {
        if (node is not YamlMappingNode component)
        {
            reader.Problem(node, path, "must be a mapping with type and name");
            return null;
        }

        reader.RejectUnknown(component, ["type", "name", "measured_unit", "description"], path + ".");
        var type = reader.String(component, "type", required: true, prefix: path + ".");
        var name = reader.String(component, "name", required: true, prefix: path + ".");
        var unit = reader.String(component, "measured_unit", required: false, prefix: path + ".") ?? "credits";
        var description = reader.String(component, "description", required: false, prefix: path + ".") ?? string.Empty;
        return type is null || name is null ? null : new UsageComponent(type, name, unit, description);
    }

    private static PlanDefinition ReadPlan(NodeReader reader, YamlMappingNode root, IReadOnlyList<UsageComponent> components)
    {
        var prices = new Dictionary<string, decimal>();
        if (reader.Mapping(root, "plan", required: true) is not { } plan)
        {
            return new PlanDefinition(string.Empty, string.Empty, prices);
        }

        reader.RejectUnknown(plan, ["name", "description", "prices"], "plan.");
        var name = reader.String(plan, "name", required: true, prefix: "plan.") ?? string.Empty;
        var description = reader.String(plan, "description", required: false, prefix: "plan.") ?? string.Empty;
        if (reader.Mapping(plan, "prices", required: true, prefix: "plan.") is { } map)
        {
            foreach (var (keyNode, valueNode) in map.Children)
            {
                var component = ((YamlScalarNode)keyNode).Value ?? string.Empty;
                if (components.All(c => c.Type != component))
                {
                    reader.Problem(keyNode, $"plan.prices.{component}", "is not one of the components");
                }

                var text = reader.Scalar(valueNode, $"plan.prices.{component}");
                if (text is not null && decimal.TryParse(text, NumberStyles.Number, CultureInfo.InvariantCulture, out var price) && price >= 0)
                {
                    prices[component] = price;
                }
                else
                {
                    reader.Problem(valueNode, $"plan.prices.{component}", "must be a non-negative amount");
                }
            }
        }

        return new PlanDefinition(name, description, prices);
    }

    private static string SnakeCase(Capability capability) => capability switch
    {
        Capability.Chat => "chat",
        Capability.KnowledgeBase => "knowledge_base",
        Capability.Widget => "widget",
        Capability.ImageGeneration => "image_generation",
        Capability.Voice => "voice",
        Capability.Automation => "automation",
        _ => throw new ArgumentOutOfRangeException(nameof(capability), capability, "Unknown capability."),
    };

    [GeneratedRegex("^[a-z0-9]+(-[a-z0-9]+)*$")]
    private static partial Regex SlugPattern();

    [GeneratedRegex("^[a-z][a-z0-9_]*$")]
    private static partial Regex OptionKeyPattern();
}
