using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace CmpWaldurAdapter.Catalogue;

/// <summary>Typed reads from a YAML tree that collect problems (with file and line) instead of throwing.</summary>
internal sealed class NodeReader(string file, List<string> problems)
{
    public void Problem(YamlNode node, string field, string message) =>
        problems.Add($"{file}:{node.Start.Line}: {field}: {message}");

    public void RejectUnknown(YamlMappingNode mapping, IReadOnlyCollection<string> known, string prefix)
    {
        foreach (var key in mapping.Children.Keys.OfType<YamlScalarNode>())
        {
            if (!known.Contains(key.Value ?? string.Empty))
            {
                Problem(key, prefix + key.Value, $"unknown field (expected one of: {string.Join(", ", known)})");
            }
        }
    }

    public YamlNode? Field(YamlMappingNode mapping, string name, bool required, string prefix)
    {
        if (mapping.Children.TryGetValue(new YamlScalarNode(name), out var node))
        {
            return node;
        }

        if (required)
        {
            Problem(mapping, prefix + name, "is required");
        }

        return null;
    }

    public string? Scalar(YamlNode node, string field)
    {
        if (node is YamlScalarNode scalar && scalar.Value is { } value)
        {
            return value;
        }

        Problem(node, field, "must be a single value");
        return null;
    }

    public string? String(YamlMappingNode mapping, string name, bool required, string prefix = "", int maxLength = 10_000)
    {
        if (Field(mapping, name, required, prefix) is not { } node)
        {
            return null;
        }

        var value = Scalar(node, prefix + name);
        if (value is null)
        {
            return null;
        }

        if (required && string.IsNullOrWhiteSpace(value))
        {
            Problem(node, prefix + name, "must not be empty");
            return null;
        }

        if (value.Length > maxLength)
        {
            Problem(node, prefix + name, $"must be at most {maxLength} characters");
            return null;
        }

        return value.Trim();
    }

    public long? Integer(YamlNode node, string field, long min, long max)
    {
        var text = Scalar(node, field);
        if (text is null)
        {
            return null;
        }

        if (!long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            Problem(node, field, min == long.MinValue ? "must be a whole number" : $"must be a whole number from {min} to {max}");
            return null;
        }

        return value;
    }

    public bool Boolean(YamlNode node, string field)
    {
        var text = Scalar(node, field);
        if (text is "true" or "false")
        {
            return text == "true";
        }

        Problem(node, field, "must be true or false");
        return false;
    }

    public YamlMappingNode? Mapping(YamlMappingNode mapping, string name, bool required, string prefix = "")
    {
        if (Field(mapping, name, required, prefix) is not { } node)
        {
            return null;
        }

        if (node is YamlMappingNode child)
        {
            return child;
        }

        Problem(node, prefix + name, "must be a mapping");
        return null;
    }

    public IReadOnlyList<YamlNode> List(YamlMappingNode mapping, string name, bool required, string prefix = "")
    {
        if (Field(mapping, name, required, prefix) is not { } node)
        {
            return [];
        }

        if (node is YamlSequenceNode sequence)
        {
            if (required && sequence.Children.Count == 0)
            {
                Problem(node, prefix + name, "must not be empty");
            }

            return sequence.Children.ToList();
        }

        Problem(node, prefix + name, "must be a list");
        return [];
    }

    public TEnum? Enum<TEnum>(YamlMappingNode mapping, string name, Func<TEnum, string> spell)
        where TEnum : struct, Enum =>
        Field(mapping, name, required: true, string.Empty) is { } node ? EnumValue(node, name, spell) : null;

    public TEnum? EnumValue<TEnum>(YamlNode node, string field, Func<TEnum, string> spell)
        where TEnum : struct, Enum
    {
        var text = Scalar(node, field);
        foreach (var value in System.Enum.GetValues<TEnum>())
        {
            if (spell(value) == text)
            {
                return value;
            }
        }

        if (text is not null)
        {
            Problem(node, field, $"'{text}' is not one of: {string.Join(", ", System.Enum.GetValues<TEnum>().Select(spell))}");
        }

        return null;
    }

    public TEnum? EnumCustom<TEnum>(YamlMappingNode mapping, string name, string prefix, Func<string, TEnum?> parse, string allowed)
        where TEnum : struct
    {
        if (Field(mapping, name, required: true, prefix) is not { } node || Scalar(node, prefix + name) is not { } text)
        {
            return null;
        }

        var value = parse(text);
        if (value is null)
        {
            Problem(node, prefix + name, $"'{text}' is not one of: {allowed}");
        }

        return value;
    }

    public string? RelativeJsonPath(YamlMappingNode mapping, string name)
    {
        var value = String(mapping, name, required: true);
        if (value is null)
        {
            return null;
        }

        if (Path.IsPathRooted(value) || value.Split('/', '\\').Contains("..") || !value.EndsWith(".json", StringComparison.Ordinal))
        {
            Problem(mapping.Children[new YamlScalarNode(name)], name, "must be a relative path to a .json file inside the catalogue");
            return null;
        }

        return value;
    }
}
