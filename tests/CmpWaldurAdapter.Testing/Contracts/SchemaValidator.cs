using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Testing.Contracts;

/// <summary>
/// The subset of JSON Schema that OpenAPI request schemas use, for OpenAPI 3.0 (<c>nullable</c>,
/// $ref siblings ignored) and 3.1 (type arrays, <c>type: "null"</c>, $ref siblings applied).
/// </summary>
/// <remarks>
/// oneOf is checked like anyOf on purpose: generated specs (drf-spectacular, FastAPI) emit
/// overlapping branches such as an enum next to BlankEnum, where "exactly one" would reject
/// requests the server accepts. Unknown keywords and formats are ignored rather than guessed.
/// </remarks>
internal sealed partial class SchemaValidator(OpenApiDocument document)
{
    private const int MaxDepth = 96;
    private const int MaxListedValues = 12;
    private static readonly ConcurrentDictionary<string, Regex?> Patterns = new(StringComparer.Ordinal);
    private static readonly TimeSpan PatternTimeout = TimeSpan.FromSeconds(1);

    /// <summary>A violation; <paramref name="IsTypeMismatch"/> marks "wrong type here", used to pick the relevant anyOf branch.</summary>
    internal readonly record struct Error(string Location, string Message, bool IsTypeMismatch = false);

    /// <summary>Validates a JSON value against a schema, appending every violation found.</summary>
    public void Validate(JsonNode? instance, JsonNode? schema, string location, List<Error> errors) =>
        Validate(instance, schema, location, errors, 0);

    /// <summary>
    /// Validates a raw string from a path, query or header parameter: the text is read as each
    /// declared type in turn (integer, number, boolean, string) and passes if any reading fits.
    /// </summary>
    public void ValidateRaw(string raw, JsonNode? schema, string location, List<Error> errors) =>
        ValidateRaw(raw, schema, location, errors, 0);

    /// <summary>Finds the item schema when the schema (or one of its branches) is an array.</summary>
    public bool TryGetArrayItems(JsonNode? schema, out JsonNode? items) => TryGetArrayItems(schema, out items, 0);

    /// <summary>Names that a (form) object schema requires, through $ref and allOf; readOnly ones excluded.</summary>
    public IReadOnlyList<string> RequiredProperties(JsonNode? schema)
    {
        var result = new List<string>();
        CollectRequired(schema, result, 0);
        return result.Distinct(StringComparer.Ordinal).ToList();
    }

    /// <summary>Follows $ref chains (3.0 semantics: siblings dropped) to the schema object used.</summary>
    public JsonObject? Dereference(JsonNode? schema)
    {
        for (var hops = 0; hops < MaxDepth && schema is JsonObject obj; hops++)
        {
            if (RefOf(obj) is not { } reference)
            {
                return obj;
            }

            if (!document.TryResolve(reference, out schema))
            {
                return null;
            }
        }

        return null;
    }

    private void Validate(JsonNode? instance, JsonNode? schema, string location, List<Error> errors, int depth)
    {
        if (!Enter(schema, location, errors, depth, out var s))
        {
            return;
        }

        if (RefOf(s) is { } reference)
        {
            if (!document.TryResolve(reference, out var target))
            {
                errors.Add(new(location, $"schema $ref '{reference}' does not resolve"));
                return;
            }

            Validate(instance, target, location, errors, depth + 1);
            if (!document.IsOpenApi31)
            {
                return; // 3.0: everything beside $ref is ignored.
            }
        }

        var kind = KindOf(instance);
        if (kind == JsonValueKind.Null && IsTrue(s, "nullable"))
        {
            return;
        }

        if (!ValidateLeaf(instance, kind, s, location, errors))
        {
            return; // Wrong type: nested checks would only add noise.
        }

        if (kind == JsonValueKind.Array)
        {
            ValidateArray((JsonArray)instance!, s, location, errors, depth);
        }
        else if (kind == JsonValueKind.Object)
        {
            ValidateObject((JsonObject)instance!, s, location, errors, depth);
        }

        if (s["allOf"] is JsonArray allOf)
        {
            foreach (var branch in allOf)
            {
                Validate(instance, branch, location, errors, depth + 1);
            }
        }

        foreach (var keyword in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (s[keyword] is JsonArray branches)
            {
                MatchAny(keyword, branches, location, errors, (branch, branchErrors) => Validate(instance, branch, location, branchErrors, depth + 1));
            }
        }

        if (s["not"] is { } not)
        {
            var notErrors = new List<Error>();
            Validate(instance, not, location, notErrors, depth + 1);
            if (notErrors.Count == 0)
            {
                errors.Add(new(location, $"{Describe(instance)} must not match the 'not' schema"));
            }
        }
    }

    private void ValidateRaw(string raw, JsonNode? schema, string location, List<Error> errors, int depth)
    {
        if (!Enter(schema, location, errors, depth, out var s))
        {
            return;
        }

        if (RefOf(s) is { } reference)
        {
            if (!document.TryResolve(reference, out var target))
            {
                errors.Add(new(location, $"schema $ref '{reference}' does not resolve"));
                return;
            }

            ValidateRaw(raw, target, location, errors, depth + 1);
            if (!document.IsOpenApi31)
            {
                return;
            }
        }

        var types = TypesOf(s);
        if (types is null)
        {
            if (s["enum"] is JsonArray values && !values.Any(v => RawEquals(raw, v)))
            {
                errors.Add(new(location, $"'{raw}' is not one of {ListValues(values)}"));
            }
        }
        else
        {
            List<Error>? firstFailure = null;
            var matched = false;
            foreach (var type in types)
            {
                var attempt = new List<Error>();
                switch (type)
                {
                    case "object":
                        break; // Serialisation styles for objects are not modelled: accept.
                    case "array":
                        ValidateRaw(raw, s["items"], location, attempt, depth + 1);
                        break;
                    default:
                        if (Coerce(raw, type) is { } value)
                        {
                            ValidateLeaf(value.Node, value.Kind, s, location, attempt);
                        }
                        else
                        {
                            attempt.Add(new(location, $"expected {type}, got '{raw}'", IsTypeMismatch: true));
                        }

                        break;
                }

                if (attempt.Count == 0)
                {
                    matched = true;
                    break;
                }

                firstFailure ??= attempt;
            }

            if (!matched && firstFailure is not null)
            {
                errors.AddRange(types.Count == 1
                    ? firstFailure
                    : [new(location, $"expected {string.Join(" or ", types)}, got '{raw}'")]);
                return;
            }
        }

        if (s["allOf"] is JsonArray allOf)
        {
            foreach (var branch in allOf)
            {
                ValidateRaw(raw, branch, location, errors, depth + 1);
            }
        }

        foreach (var keyword in (ReadOnlySpan<string>)["anyOf", "oneOf"])
        {
            if (s[keyword] is JsonArray branches)
            {
                MatchAny(keyword, branches, location, errors, (branch, branchErrors) => ValidateRaw(raw, branch, location, branchErrors, depth + 1));
            }
        }
    }

    // Type, enum, const and the scalar keywords. Returns false when the type is wrong.
    private static bool ValidateLeaf(JsonNode? instance, JsonValueKind kind, JsonObject s, string location, List<Error> errors)
    {
        var types = TypesOf(s);
        if (types is not null && !types.Any(t => MatchesType(t, instance, kind)))
        {
            errors.Add(new(location, $"expected {string.Join(" or ", types)}, got {Describe(instance)}", IsTypeMismatch: true));
            return false;
        }

        if (s["enum"] is JsonArray values && !values.Any(v => JsonNode.DeepEquals(instance, v)))
        {
            errors.Add(new(location, $"{Describe(instance)} is not one of {ListValues(values)}"));
        }

        if (s.TryGetPropertyValue("const", out var constant) && !JsonNode.DeepEquals(instance, constant))
        {
            errors.Add(new(location, $"{Describe(instance)} is not the constant {Describe(constant)}"));
        }

        if (kind == JsonValueKind.String)
        {
            ValidateString(instance!.GetValue<string>(), s, location, errors);
        }
        else if (kind == JsonValueKind.Number)
        {
            ValidateNumber(instance!, s, location, errors);
        }

        return true;
    }

    private static void ValidateString(string text, JsonObject s, string location, List<Error> errors)
    {
        var length = text.EnumerateRunes().Count(); // JSON Schema counts code points.
        if (NumberOf(s["minLength"]) is { } minLength && length < minLength)
        {
            errors.Add(new(location, $"'{Shorten(text)}' is shorter than minLength {minLength}"));
        }

        if (NumberOf(s["maxLength"]) is { } maxLength && length > maxLength)
        {
            errors.Add(new(location, $"'{Shorten(text)}' is longer than maxLength {maxLength}"));
        }

        if (StringOf(s["pattern"]) is { } pattern && PatternOf(pattern) is { } regex && !regex.IsMatch(text))
        {
            errors.Add(new(location, $"'{Shorten(text)}' does not match pattern {pattern}"));
        }

        var format = StringOf(s["format"]);
        var formatOk = format switch
        {
            // Waldur (Django) writes UUIDs without hyphens as well, so both forms are accepted.
            "uuid" => Guid.TryParseExact(text, "D", out _) || Guid.TryParseExact(text, "N", out _),
            "date" => DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _),
            "date-time" => DateTimeText().IsMatch(text) && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out _),
            _ => true,
        };
        if (!formatOk)
        {
            errors.Add(new(location, $"'{Shorten(text)}' is not a valid {format}"));
        }
    }

    private static void ValidateNumber(JsonNode instance, JsonObject s, string location, List<Error> errors)
    {
        var value = NumberOf(instance)!.Value;
        var text = instance.ToJsonString();
        if (NumberOf(s["minimum"]) is { } minimum)
        {
            // 3.0 spells an exclusive bound as a boolean next to minimum.
            var exclusive = IsTrue(s, "exclusiveMinimum");
            if (exclusive ? value <= minimum : value < minimum)
            {
                errors.Add(new(location, $"{text} is below the {(exclusive ? "exclusive " : "")}minimum {minimum.ToString(CultureInfo.InvariantCulture)}"));
            }
        }

        if (NumberOf(s["maximum"]) is { } maximum)
        {
            var exclusive = IsTrue(s, "exclusiveMaximum");
            if (exclusive ? value >= maximum : value > maximum)
            {
                errors.Add(new(location, $"{text} is above the {(exclusive ? "exclusive " : "")}maximum {maximum.ToString(CultureInfo.InvariantCulture)}"));
            }
        }

        // 3.1 spells them as numbers of their own.
        if (NumberOf(s["exclusiveMinimum"]) is { } exclusiveMinimum && value <= exclusiveMinimum)
        {
            errors.Add(new(location, $"{text} is not above the exclusive minimum {exclusiveMinimum.ToString(CultureInfo.InvariantCulture)}"));
        }

        if (NumberOf(s["exclusiveMaximum"]) is { } exclusiveMaximum && value >= exclusiveMaximum)
        {
            errors.Add(new(location, $"{text} is not below the exclusive maximum {exclusiveMaximum.ToString(CultureInfo.InvariantCulture)}"));
        }

        var format = StringOf(s["format"]);
        if ((format == "int32" && (value < int.MinValue || value > int.MaxValue))
            || (format == "int64" && (value < long.MinValue || value > long.MaxValue)))
        {
            errors.Add(new(location, $"{text} does not fit {format}"));
        }
    }

    private void ValidateArray(JsonArray array, JsonObject s, string location, List<Error> errors, int depth)
    {
        if (NumberOf(s["minItems"]) is { } minItems && array.Count < minItems)
        {
            errors.Add(new(location, $"array has {array.Count} items, fewer than minItems {minItems}"));
        }

        if (NumberOf(s["maxItems"]) is { } maxItems && array.Count > maxItems)
        {
            errors.Add(new(location, $"array has {array.Count} items, more than maxItems {maxItems}"));
        }

        if (IsTrue(s, "uniqueItems"))
        {
            for (var i = 0; i < array.Count; i++)
            {
                for (var j = 0; j < i; j++)
                {
                    if (JsonNode.DeepEquals(array[i], array[j]))
                    {
                        errors.Add(new($"{location}[{i}]", $"duplicates item {j} but uniqueItems is set"));
                    }
                }
            }
        }

        if (s.TryGetPropertyValue("items", out var items) && items is not null)
        {
            for (var i = 0; i < array.Count; i++)
            {
                Validate(array[i], items, $"{location}[{i}]", errors, depth + 1);
            }
        }
    }

    private void ValidateObject(JsonObject instance, JsonObject s, string location, List<Error> errors, int depth)
    {
        var properties = s["properties"] as JsonObject;
        if (s["required"] is JsonArray required)
        {
            foreach (var name in required.Select(StringOf).OfType<string>())
            {
                // readOnly properties are response-only: a request cannot be required to send them.
                if (!instance.ContainsKey(name) && !IsReadOnly(properties?[name]))
                {
                    errors.Add(new(location, $"required property '{name}' is missing"));
                }
            }
        }

        var patternProperties = s["patternProperties"] as JsonObject;
        s.TryGetPropertyValue("additionalProperties", out var additional);
        foreach (var (name, value) in instance)
        {
            var propertyLocation = $"{location}.{name}";
            var known = false;
            if (properties is not null && properties.TryGetPropertyValue(name, out var propertySchema))
            {
                known = true;
                Validate(value, propertySchema, propertyLocation, errors, depth + 1);
            }

            if (patternProperties is not null)
            {
                foreach (var (pattern, patternSchema) in patternProperties)
                {
                    if (PatternOf(pattern) is { } regex && regex.IsMatch(name))
                    {
                        known = true;
                        Validate(value, patternSchema, propertyLocation, errors, depth + 1);
                    }
                }
            }

            if (known)
            {
                continue;
            }

            if (additional is JsonValue flag && flag.GetValueKind() == JsonValueKind.False)
            {
                var allowed = properties is null ? "none" : string.Join(", ", properties.Select(p => p.Key));
                errors.Add(new(propertyLocation, $"property '{name}' is not allowed (additionalProperties: false; declared: {allowed})"));
            }
            else if (additional is JsonObject additionalSchema)
            {
                Validate(value, additionalSchema, propertyLocation, errors, depth + 1);
            }
        }
    }

    private static void MatchAny(string keyword, JsonArray branches, string location, List<Error> errors, Action<JsonNode?, List<Error>> validate)
    {
        var failures = new List<List<Error>>();
        foreach (var branch in branches)
        {
            var branchErrors = new List<Error>();
            validate(branch, branchErrors);
            if (branchErrors.Count == 0)
            {
                return;
            }

            failures.Add(branchErrors);
        }

        if (failures.Count == 0)
        {
            return;
        }

        // anyOf [X, null] and friends: when only one branch has the right type, its own errors
        // (with their deeper locations) say more than a summary of every branch.
        var typed = failures.Where(f => !f.All(e => e.IsTypeMismatch && e.Location == location)).ToList();
        if (typed.Count == 1)
        {
            errors.AddRange(typed[0]);
            return;
        }

        var reasons = failures.Select((f, i) =>
            $"({i + 1}) {string.Join("; ", f.Take(2).Select(e => e.Location == location ? e.Message : $"{e.Location}: {e.Message}"))}");
        errors.Add(new(location, $"matches none of the {failures.Count} {keyword} alternatives: {string.Join(" ", reasons)}"));
    }

    private bool TryGetArrayItems(JsonNode? schema, out JsonNode? items, int depth)
    {
        items = null;
        if (depth > MaxDepth || schema is not JsonObject s)
        {
            return false;
        }

        if (RefOf(s) is { } reference && document.TryResolve(reference, out var target) && TryGetArrayItems(target, out items, depth + 1))
        {
            return true;
        }

        if (TypesOf(s) is { } types && types.Contains("array"))
        {
            items = s["items"];
            return true;
        }

        foreach (var keyword in (ReadOnlySpan<string>)["allOf", "anyOf", "oneOf"])
        {
            if (s[keyword] is JsonArray branches && branches.Any(b => TryGetArrayItems(b, out _, depth + 1)))
            {
                TryGetArrayItems(branches.First(b => TryGetArrayItems(b, out _, depth + 1)), out items, depth + 1);
                return true;
            }
        }

        return false;
    }

    private void CollectRequired(JsonNode? schema, List<string> result, int depth)
    {
        if (depth > MaxDepth || Dereference(schema) is not { } s)
        {
            return;
        }

        var properties = s["properties"] as JsonObject;
        if (s["required"] is JsonArray required)
        {
            result.AddRange(required.Select(StringOf).OfType<string>().Where(name => !IsReadOnly(properties?[name])));
        }

        if (s["allOf"] is JsonArray allOf)
        {
            foreach (var branch in allOf)
            {
                CollectRequired(branch, result, depth + 1);
            }
        }
    }

    private bool IsReadOnly(JsonNode? propertySchema) =>
        propertySchema is JsonObject property && (IsTrue(property, "readOnly") || (RefOf(property) is not null && Dereference(property) is { } target && IsTrue(target, "readOnly")));

    private static bool Enter(JsonNode? schema, string location, List<Error> errors, int depth, out JsonObject s)
    {
        s = null!;
        if (depth > MaxDepth)
        {
            errors.Add(new(location, "schema nests too deeply (a $ref cycle that consumes no input?)"));
            return false;
        }

        switch (schema)
        {
            case JsonObject obj:
                s = obj;
                return true;
            case JsonValue flag when flag.GetValueKind() == JsonValueKind.False:
                errors.Add(new(location, "no value is allowed here (schema is false)"));
                return false;
            default:
                return false; // Absent schema, {} or true: anything goes.
        }
    }

    private static (JsonNode? Node, JsonValueKind Kind)? Coerce(string raw, string type)
    {
        switch (type)
        {
            case "string":
                return (JsonValue.Create(raw), JsonValueKind.String);
            case "integer" when long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer):
                return (JsonValue.Create(integer), JsonValueKind.Number);
            case "number" when decimal.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var number):
                return (JsonValue.Create(number), JsonValueKind.Number);
            case "boolean" when bool.TryParse(raw, out var flag):
                return (JsonValue.Create(flag), flag ? JsonValueKind.True : JsonValueKind.False);
            case "null" when raw.Length == 0:
                return (null, JsonValueKind.Null);
            default:
                return null;
        }
    }

    private static bool RawEquals(string raw, JsonNode? value) => value switch
    {
        null => raw.Length == 0 || raw == "null",
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>() == raw,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => NumberOf(v) is { } n
            && decimal.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var r) && n == r,
        JsonValue v => string.Equals(v.ToJsonString(), raw, StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    private static bool MatchesType(string type, JsonNode? instance, JsonValueKind kind) => type switch
    {
        "string" => kind == JsonValueKind.String,
        "number" => kind == JsonValueKind.Number,
        "integer" => kind == JsonValueKind.Number && NumberOf(instance) is { } n && n == decimal.Truncate(n),
        "boolean" => kind is JsonValueKind.True or JsonValueKind.False,
        "array" => kind == JsonValueKind.Array,
        "object" => kind == JsonValueKind.Object,
        "null" => kind == JsonValueKind.Null,
        _ => true,
    };

    private static List<string>? TypesOf(JsonObject s) => s["type"] switch
    {
        JsonValue single when single.GetValueKind() == JsonValueKind.String => [single.GetValue<string>()],
        JsonArray many => many.Select(StringOf).OfType<string>().ToList(),
        _ => null,
    };

    internal static string? RefOf(JsonObject s) => StringOf(s["$ref"]);

    internal static string? StringOf(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : null;

    internal static bool IsTrue(JsonObject s, string keyword) =>
        s[keyword] is JsonValue value && value.GetValueKind() == JsonValueKind.True;

    internal static JsonValueKind KindOf(JsonNode? node) => node?.GetValueKind() ?? JsonValueKind.Null;

    // Numbers from YAML are CLR primitives and from JSON are elements; the JSON text reads both.
    private static decimal? NumberOf(JsonNode? node) =>
        node is JsonValue value && value.GetValueKind() == JsonValueKind.Number
            && decimal.TryParse(value.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var number)
            ? number
            : null;

    internal static string Describe(JsonNode? node) => KindOf(node) switch
    {
        JsonValueKind.Null => "null",
        JsonValueKind.String => $"string '{Shorten(node!.GetValue<string>())}'",
        JsonValueKind.Number => $"number {node!.ToJsonString()}",
        JsonValueKind.True or JsonValueKind.False => $"boolean {node!.ToJsonString()}",
        JsonValueKind.Array => "array",
        JsonValueKind.Object => "object",
        var other => other.ToString(),
    };

    private static string ListValues(JsonArray values)
    {
        var shown = values.Take(MaxListedValues).Select(v => v is null ? "null" : v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString());
        return $"[{string.Join(", ", shown)}{(values.Count > MaxListedValues ? $", … ({values.Count} values)" : "")}]";
    }

    private static string Shorten(string text) => text.Length <= 80 ? text : text[..77] + "...";

    private static Regex? PatternOf(string pattern) => Patterns.GetOrAdd(pattern, static p =>
    {
        // ECMA-262 semantics first (ASCII \d and \w, as JSON Schema intends); .NET syntax as fallback.
        try
        {
            return new Regex(p, RegexOptions.ECMAScript | RegexOptions.CultureInvariant, PatternTimeout);
        }
        catch (ArgumentException)
        {
            try
            {
                return new Regex(p, RegexOptions.CultureInvariant, PatternTimeout);
            }
            catch (ArgumentException)
            {
                return null; // A pattern .NET cannot compile is not checked rather than guessed.
            }
        }
    });

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$", RegexOptions.CultureInvariant)]
    private static partial Regex DateTimeText();
}
