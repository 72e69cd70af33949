using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>A flow template that cannot be used (missing, not JSON, or not in Langflow's export shape).</summary>
public sealed class FlowTemplateException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One offering's flow template, as read from the catalogue.</summary>
public sealed record FlowTemplate(string Name, string Description, JsonObject Data, string SourceFile);

/// <summary>
/// The catalogue's Langflow flow templates (<c>catalogue/flows/*.json</c>, Langflow's export shape). Every
/// template has the stable components <see cref="ComponentIds"/>; the buyer's settings fill the variables of
/// <see cref="PromptComponentId"/> whose names are option keys, so a flow is correct even without run-time
/// tweaks. Options the prompt does not name (colours, limits) never touch the flow.
/// </summary>
public sealed class FlowTemplates(OfferingCatalogue catalogue)
{
    public const string ChatInputComponentId = "ChatInput-cmp01";
    public const string PromptComponentId = "Prompt-cmp01";
    public const string ModelComponentId = "OpenAIModel-cmp01";
    public const string ChatOutputComponentId = "ChatOutput-cmp01";

    /// <summary>Langflow's Message History: reads the run's session back, so a named conversation is remembered.</summary>
    public const string MemoryComponentId = "Memory-cmp01";

    /// <summary>The prompt variable the memory component's text fills through its edge.</summary>
    public const string HistoryVariable = "history";

    public static readonly IReadOnlyList<string> ComponentIds = [ChatInputComponentId, PromptComponentId, ModelComponentId, ChatOutputComponentId, MemoryComponentId];

    /// <summary>
    /// Prompt variables filled per message at run time, never from settings: <c>context</c> by the adapter's tweak,
    /// <c>history</c> by Langflow from the memory component's edge (a tweak or setting must not overwrite it).
    /// </summary>
    public static readonly IReadOnlyList<string> RuntimeVariables = ["context", HistoryVariable];

    private readonly ConcurrentDictionary<string, FlowTemplate> _cache = new(StringComparer.Ordinal);

    public FlowTemplate For(CatalogueEntry entry) =>
        _cache.GetOrAdd(entry.FlowTemplate, relative => Read(catalogue.PathOf(relative)));

    /// <summary>Reads and checks a template file.</summary>
    public static FlowTemplate Read(string path)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FlowTemplateException($"{path}: a flow template must be a JSON object.");
        }
        catch (Exception exception) when (exception is IOException or JsonException or UnauthorizedAccessException)
        {
            throw new FlowTemplateException($"{path}: the flow template cannot be read: {exception.Message}", exception);
        }

        var problems = Check(root).ToList();
        if (problems.Count > 0)
        {
            throw new FlowTemplateException($"{path}: {string.Join("; ", problems)}");
        }

        return new FlowTemplate(
            root["name"]!.GetValue<string>(),
            root["description"]?.GetValue<string>() ?? string.Empty,
            root["data"]!.AsObject(),
            path);
    }

    /// <summary>What is wrong with a template, if anything.</summary>
    public static IEnumerable<string> Check(JsonObject root)
    {
        if (root["name"] is not JsonValue name || name.GetValueKind() != JsonValueKind.String)
        {
            yield return "'name' must be a string";
        }

        if (root["data"] is not JsonObject data)
        {
            yield return "'data' must be an object with nodes, edges and viewport";
            yield break;
        }

        if (data["nodes"] is not JsonArray nodes || data["edges"] is not JsonArray edges || data["viewport"] is not JsonObject)
        {
            yield return "'data' must hold 'nodes' and 'edges' arrays and a 'viewport' object";
            yield break;
        }

        var ids = nodes.OfType<JsonObject>().Select(n => n["id"]?.GetValue<string>()).ToList();
        foreach (var id in ComponentIds.Where(id => !ids.Contains(id)))
        {
            yield return $"component '{id}' is missing";
        }

        foreach (var edge in edges.OfType<JsonObject>())
        {
            var source = edge["source"]?.GetValue<string>();
            var target = edge["target"]?.GetValue<string>();
            if (!ids.Contains(source) || !ids.Contains(target))
            {
                yield return $"edge {source} -> {target} names a component that does not exist";
            }
        }

        if (PromptTemplate(data) is not { } template || template["template"]?["value"] is not JsonValue text || text.GetValueKind() != JsonValueKind.String)
        {
            yield return $"'{PromptComponentId}' must have a 'template' field with the prompt text";
            yield break;
        }

        var variables = Variables(text.GetValue<string>());
        foreach (var variable in variables.Where(v => template[v] is not JsonObject))
        {
            yield return $"prompt variable '{{{variable}}}' has no field in '{PromptComponentId}'";
        }

        // Without this edge the model sees only the instructions and the last message: the conversation is forgotten.
        if (!variables.Contains(HistoryVariable) || !edges.OfType<JsonObject>().Any(IsMemoryEdge))
        {
            yield return $"'{MemoryComponentId}' must feed its 'messages_text' into the prompt's '{{{HistoryVariable}}}' variable";
        }
    }

    private static bool IsMemoryEdge(JsonObject edge) =>
        edge["source"]?.GetValue<string>() == MemoryComponentId
        && edge["target"]?.GetValue<string>() == PromptComponentId
        && edge["data"]?["sourceHandle"]?["name"]?.GetValue<string>() == "messages_text"
        && edge["data"]?["targetHandle"]?["fieldName"]?.GetValue<string>() == HistoryVariable;

    /// <summary>The variables (<c>{name}</c>) of a prompt text.</summary>
    public static IReadOnlyList<string> Variables(string prompt)
    {
        var names = new List<string>();
        for (var start = prompt.IndexOf('{', StringComparison.Ordinal); start >= 0; start = prompt.IndexOf('{', start + 1))
        {
            var end = prompt.IndexOf('}', start + 1);
            if (end > start + 1)
            {
                var name = prompt[(start + 1)..end];
                if (name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') && !names.Contains(name))
                {
                    names.Add(name);
                }
            }
        }

        return names;
    }

    /// <summary>The template's graph with the buyer's settings filled into the prompt's variables.</summary>
    public static JsonObject Build(FlowTemplate template, JsonObject configuration)
    {
        var data = (JsonObject)template.Data.DeepClone();
        var fields = PromptTemplate(data)!;
        var prompt = fields["template"]!["value"]!.GetValue<string>();
        foreach (var variable in Variables(prompt).Except(RuntimeVariables))
        {
            if (configuration[variable] is { } value && fields[variable] is JsonObject field)
            {
                field["value"] = Text(value);
            }
        }

        return data;
    }

    /// <summary>Whether a stored flow's prompt (text and variable values) differs from what <paramref name="desired"/> holds.</summary>
    public static bool PromptDiffers(object? currentData, JsonObject desired)
    {
        var current = currentData switch
        {
            null => null,
            JsonNode node => node,
            _ => JsonSerializer.SerializeToNode(currentData),
        };
        if (current is not JsonObject currentObject || PromptTemplate(currentObject) is not { } have)
        {
            return true;
        }

        var want = PromptTemplate(desired)!;
        var prompt = want["template"]!["value"]!.GetValue<string>();
        return Variables(prompt).Except(RuntimeVariables).Prepend("template")
            .Any(name => !JsonNode.DeepEquals(have[name]?["value"], want[name]?["value"]));
    }

    private static JsonObject? PromptTemplate(JsonObject data) =>
        (data["nodes"] as JsonArray)?.OfType<JsonObject>()
            .FirstOrDefault(n => n["id"]?.GetValue<string>() == PromptComponentId)?["data"]?["node"]?["template"] as JsonObject;

    // Prompt variables are text: lists read as "a, b", numbers and booleans in invariant form.
    private static string Text(JsonNode value) => value switch
    {
        JsonArray array => string.Join(", ", array.Select(item => item is null ? string.Empty : Text(item))),
        JsonValue scalar when scalar.GetValueKind() == JsonValueKind.String => scalar.GetValue<string>(),
        JsonValue scalar when scalar.GetValueKind() is JsonValueKind.True or JsonValueKind.False => scalar.GetValue<bool>() ? "true" : "false",
        JsonValue scalar when scalar.TryGetValue<decimal>(out var number) => number.ToString(CultureInfo.InvariantCulture),
        _ => value.ToJsonString(),
    };
}
