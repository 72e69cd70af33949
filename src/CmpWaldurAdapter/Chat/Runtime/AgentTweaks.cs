using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Chat.Runtime;

/// <summary>
/// The run-time tweaks of a subscription's flow, addressed to the templates' stable component ids: the
/// prompt's variables from the subscription's own settings (so a run is right even before an Update order
/// reached the flow), <c>context</c> from its own knowledge base, the caller's system messages appended to
/// the buyer's instructions, and the model's temperature and token limit when the request sets them.
/// </summary>
public sealed class AgentTweaks(FlowTemplates templates, IOptions<ChatOptions> options) : IAgentTweaks
{
    /// <summary>Variables that carry free-form instructions; the caller's system messages are appended to the first present.</summary>
    private static readonly string[] InstructionVariables = ["instructions", "system_prompt"];

    private readonly ConcurrentDictionary<string, IReadOnlyList<string>> _variables = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, IReadOnlyDictionary<string, object?>> Build(AgentTweakInput input)
    {
        IReadOnlyList<string> variables;
        try
        {
            variables = _variables.GetOrAdd(input.Offering.Slug, _ => PromptVariables(templates.For(input.Offering)));
        }
        catch (FlowTemplateException exception)
        {
            // The operator's catalogue is broken: the agent cannot be run as configured.
            throw new AgentUnavailableException("The offering's flow template cannot be read.", transient: false, exception);
        }

        var prompt = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var variable in variables)
        {
            if (variable == "context")
            {
                prompt[variable] = Context(input.Context);
            }
            else if (variable == FlowTemplates.HistoryVariable)
            {
                // Langflow fills it from the memory component's edge; a tweak would replace the conversation.
                continue;
            }
            else if (input.Configuration[variable] is { } value)
            {
                prompt[variable] = Text(value);
            }
        }

        if (input.ClientInstructions is { Length: > 0 } extra && InstructionVariables.FirstOrDefault(variables.Contains) is { } target)
        {
            prompt[target] = prompt.TryGetValue(target, out var own) && own is string { Length: > 0 } text ? text + "\n\n" + extra : extra;
        }

        var tweaks = new Dictionary<string, IReadOnlyDictionary<string, object?>>(StringComparer.Ordinal)
        {
            [FlowTemplates.PromptComponentId] = prompt,
        };
        var model = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (input.Temperature is { } temperature)
        {
            model["temperature"] = temperature;
        }

        if (input.MaxTokens is { } maxTokens)
        {
            model["max_tokens"] = maxTokens;
        }

        if (model.Count > 0)
        {
            tweaks[FlowTemplates.ModelComponentId] = model;
        }

        return tweaks;
    }

    private string Context(IReadOnlyList<KnowledgeChunk> chunks)
    {
        var text = new StringBuilder();
        var limit = options.Value.MaxContextChars;
        for (var i = 0; i < chunks.Count && text.Length < limit; i++)
        {
            var source = string.IsNullOrEmpty(chunks[i].DocumentName) ? string.Empty : $" ({chunks[i].DocumentName})";
            text.Append(CultureInfo.InvariantCulture, $"[{i + 1}]{source} {chunks[i].Content}\n\n");
        }

        return text.Length > limit ? text.ToString(0, limit) : text.ToString().TrimEnd();
    }

    private static IReadOnlyList<string> PromptVariables(FlowTemplate template)
    {
        var prompt = (template.Data["nodes"] as JsonArray)?.OfType<JsonObject>()
            .FirstOrDefault(n => n["id"]?.GetValue<string>() == FlowTemplates.PromptComponentId)?["data"]?["node"]?["template"]?["template"]?["value"]?.GetValue<string>();
        return prompt is null ? [] : FlowTemplates.Variables(prompt);
    }

    // As the flow's own copy reads them: lists "a, b", booleans true/false, numbers invariant.
    private static string Text(JsonNode value) => value switch
    {
        JsonArray array => string.Join(", ", array.Select(item => item is null ? string.Empty : Text(item))),
        JsonValue scalar when scalar.GetValueKind() == JsonValueKind.String => scalar.GetValue<string>(),
        JsonValue scalar when scalar.GetValueKind() is JsonValueKind.True or JsonValueKind.False => scalar.GetValue<bool>() ? "true" : "false",
        JsonValue scalar when scalar.TryGetValue<decimal>(out var number) => number.ToString(CultureInfo.InvariantCulture),
        _ => value.ToJsonString(),
    };
}
