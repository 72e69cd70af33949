using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>
/// Converts a YAML document into a <see cref="JsonNode"/> tree, resolving plain scalars with the
/// YAML 1.2 core schema. Quoted scalars (and scalars tagged <c>!!str</c>) always stay strings, so
/// response keys such as <c>'200'</c> and enum values such as <c>'true'</c> survive as written.
/// </summary>
/// <remarks>
/// Works on the parser's event stream rather than YamlDotNet's representation model: the Waldur
/// upstream document is 4 MB and an intermediate object graph would double the work.
/// </remarks>
public static partial class YamlJsonConverter
{
    private const string StrTag = "tag:yaml.org,2002:str";
    private const string IntTag = "tag:yaml.org,2002:int";
    private const string FloatTag = "tag:yaml.org,2002:float";
    private const string BoolTag = "tag:yaml.org,2002:bool";
    private const string NullTag = "tag:yaml.org,2002:null";

    /// <summary>Parses the first document of <paramref name="yaml"/>; an empty stream gives null.</summary>
    public static JsonNode? Parse(string yaml)
    {
        using var reader = new StringReader(yaml);
        return Parse(reader);
    }

    /// <summary>Parses the first document read from <paramref name="reader"/>.</summary>
    public static JsonNode? Parse(TextReader reader)
    {
        var parser = new Parser(reader);
        parser.Consume<StreamStart>();
        if (!parser.TryConsume<DocumentStart>(out _))
        {
            return null;
        }

        var anchors = new Dictionary<string, JsonNode?>(StringComparer.Ordinal);
        return ReadNode(parser, anchors);
    }

    private static JsonNode? ReadNode(IParser parser, Dictionary<string, JsonNode?> anchors)
    {
        if (parser.TryConsume<AnchorAlias>(out var alias))
        {
            if (!anchors.TryGetValue(alias.Value.Value, out var target))
            {
                throw new YamlException(alias.Start, alias.End, $"Unknown alias *{alias.Value.Value}");
            }

            // A JsonNode has one parent, so every use of an anchor gets its own copy.
            return target?.DeepClone();
        }

        if (parser.TryConsume<Scalar>(out var scalar))
        {
            var value = ResolveScalar(scalar);
            Remember(scalar, value, anchors);
            return value;
        }

        if (parser.TryConsume<SequenceStart>(out var sequenceStart))
        {
            var array = new JsonArray();
            while (!parser.TryConsume<SequenceEnd>(out _))
            {
                array.Add(ReadNode(parser, anchors));
            }

            Remember(sequenceStart, array, anchors);
            return array;
        }

        if (parser.TryConsume<MappingStart>(out var mappingStart))
        {
            var map = new JsonObject();
            HashSet<string>? merged = null; // Keys taken from '<<', which explicit keys may override.
            while (!parser.TryConsume<MappingEnd>(out _))
            {
                var keyEvent = parser.Current;
                if (!parser.TryConsume<Scalar>(out var key))
                {
                    throw new YamlException(keyEvent!.Start, keyEvent.End, "Only scalar mapping keys can be represented in JSON");
                }

                var value = ReadNode(parser, anchors);
                if (key.Value == "<<" && key.Style == ScalarStyle.Plain)
                {
                    merged ??= new HashSet<string>(StringComparer.Ordinal);
                    Merge(map, value, key, merged);
                    continue;
                }

                if (merged?.Remove(key.Value) != true && map.ContainsKey(key.Value))
                {
                    throw new YamlException(key.Start, key.End, $"Duplicate mapping key '{key.Value}'");
                }

                map[key.Value] = value;
            }

            Remember(mappingStart, map, anchors);
            return map;
        }

        var current = parser.Current;
        throw new YamlException(current!.Start, current.End, $"Unexpected YAML event {current.GetType().Name}");
    }

    private static void Remember(NodeEvent nodeEvent, JsonNode? value, Dictionary<string, JsonNode?> anchors)
    {
        if (!nodeEvent.Anchor.IsEmpty)
        {
            anchors[nodeEvent.Anchor.Value] = value;
        }
    }

    // Merge keys (<<) are not YAML 1.2, but PyYAML honours them and so should we: explicit keys win.
    private static void Merge(JsonObject target, JsonNode? source, Scalar key, HashSet<string> merged)
    {
        var sources = source switch
        {
            JsonObject single => [single],
            JsonArray many => many.OfType<JsonObject>().ToList(),
            _ => throw new YamlException(key.Start, key.End, "A merge key needs a mapping or a sequence of mappings"),
        };

        foreach (var map in sources)
        {
            foreach (var (name, value) in map)
            {
                if (!target.ContainsKey(name))
                {
                    target[name] = value?.DeepClone();
                    merged.Add(name);
                }
            }
        }
    }

    private static JsonValue? ResolveScalar(Scalar scalar)
    {
        var text = scalar.Value;
        if (!scalar.Tag.IsEmpty && !scalar.Tag.IsNonSpecific)
        {
            return scalar.Tag.Value switch
            {
                StrTag => JsonValue.Create(text),
                NullTag => null,
                BoolTag => JsonValue.Create(bool.Parse(text)),
                IntTag => ResolvePlain(text) is { } number && number.GetValueKind() == System.Text.Json.JsonValueKind.Number
                    ? number
                    : throw new YamlException(scalar.Start, scalar.End, $"'{text}' is not an integer"),
                FloatTag => JsonValue.Create(double.Parse(text, CultureInfo.InvariantCulture)),
                _ => JsonValue.Create(text), // Custom tags carry no meaning for OpenAPI: keep the text.
            };
        }

        // Only untagged plain scalars are resolved; quoted, literal and folded ones and the
        // non-specific tag '!' are strings by definition.
        if (scalar.Style != ScalarStyle.Plain || scalar.Tag.IsNonSpecific)
        {
            return JsonValue.Create(text);
        }

        return ResolvePlain(text);
    }

    private static JsonValue? ResolvePlain(string text)
    {
        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }

        if (text.Length == 0 || !(char.IsAsciiDigit(text[0]) || text[0] is '-' or '+' or '.'))
        {
            return JsonValue.Create(text);
        }

        if (DecimalInt().IsMatch(text))
        {
            return long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer)
                ? JsonValue.Create(integer)
                : JsonValue.Create(decimal.Parse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture));
        }

        if (text.StartsWith("0o", StringComparison.Ordinal) && OctalInt().IsMatch(text))
        {
            return JsonValue.Create(Convert.ToInt64(text[2..], 8));
        }

        if (text.StartsWith("0x", StringComparison.Ordinal) && HexInt().IsMatch(text))
        {
            return JsonValue.Create(long.Parse(text[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture));
        }

        if (Float().IsMatch(text))
        {
            return JsonValue.Create(double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
        }

        // .inf and .nan are floats in YAML but JSON cannot carry them; they stay text.
        return JsonValue.Create(text);
    }

    [GeneratedRegex("^[-+]?[0-9]+$", RegexOptions.CultureInvariant)]
    private static partial Regex DecimalInt();

    [GeneratedRegex("^0o[0-7]+$", RegexOptions.CultureInvariant)]
    private static partial Regex OctalInt();

    [GeneratedRegex("^0x[0-9a-fA-F]+$", RegexOptions.CultureInvariant)]
    private static partial Regex HexInt();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$", RegexOptions.CultureInvariant)]
    private static partial Regex Float();
}
