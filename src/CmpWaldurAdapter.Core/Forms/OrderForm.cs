using System.Globalization;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Core.Forms;

/// <summary>Field types of a Waldur offering order form (schema <c>OptionFieldTypeEnum</c>) that the adapter understands.</summary>
public enum FormFieldType
{
    String,
    Text,
    HtmlText,
    Integer,
    Money,
    Boolean,
    SelectString,
    SelectStringMulti,
    Date,
    Time,
}

/// <summary>One field of an offering's order form, as HomePort renders it.</summary>
public sealed record FormField(
    string Key,
    FormFieldType Type,
    string Label,
    bool Required = false,
    IReadOnlyList<string>? Choices = null,
    long? Min = null,
    long? Max = null,
    string? Default = null,
    int? MaxLength = null,
    string? HelpText = null);

/// <summary>The outcome of checking buyer input against a form: normalised values or buyer-readable errors.</summary>
public sealed record FormValidation(JsonObject Values, IReadOnlyList<string> Errors)
{
    public bool IsValid => Errors.Count == 0;

    /// <summary>One paragraph a buyer can act on, used as Waldur's rejection comment.</summary>
    public string Summary => IsValid ? string.Empty : "The order cannot be accepted: " + string.Join(" ", Errors);
}

/// <summary>
/// An offering's order form. Validates what buyers send in <c>order.attributes</c> (Create) or in
/// changed options (Update), applies defaults, and keeps only declared keys.
/// </summary>
public sealed class OrderForm
{
    /// <summary>Keys Waldur itself adds to every order's attributes (schema <c>GenericOrderAttributes</c>).</summary>
    private static readonly HashSet<string> WaldurGenericKeys = new(StringComparer.Ordinal) { "name", "description" };

    /// <summary>Default ceiling for free-text fields so one order cannot store megabytes of configuration.</summary>
    public const int DefaultMaxTextLength = 20_000;

    private readonly Dictionary<string, FormField> _fields;

    public OrderForm(IEnumerable<FormField> fields)
    {
        _fields = fields.ToDictionary(f => f.Key, StringComparer.Ordinal);
    }

    public IReadOnlyCollection<FormField> Fields => _fields.Values;

    public static OrderForm Empty { get; } = new([]);

    /// <summary>Validates a complete set of answers (a Create order): required fields must be present.</summary>
    public FormValidation ValidateComplete(JsonObject? input) => Validate(input, requireAll: true, baseline: null);

    /// <summary>
    /// Validates a partial change (an Update order) on top of the current values: only the keys sent are
    /// checked, the rest keep their current value.
    /// </summary>
    public FormValidation ValidateChange(JsonObject? change, JsonObject current) => Validate(change, requireAll: false, current);

    private FormValidation Validate(JsonObject? input, bool requireAll, JsonObject? baseline)
    {
        var errors = new List<string>();
        var values = baseline is null ? new JsonObject() : (JsonObject)baseline.DeepClone();
        input ??= [];

        foreach (var (key, _) in input)
        {
            if (!_fields.ContainsKey(key) && !WaldurGenericKeys.Contains(key))
            {
                errors.Add($"'{key}' is not a setting of this offering.");
            }
        }

        foreach (var field in _fields.Values)
        {
            var present = input.TryGetPropertyValue(field.Key, out var raw) && raw is not null && !IsBlank(raw);
            if (!present)
            {
                if (!requireAll)
                {
                    continue;
                }

                if (field.Default is not null && TryConvert(field, JsonValue.Create(field.Default), out var fallback, out _))
                {
                    values[field.Key] = fallback;
                }
                else if (field.Required)
                {
                    errors.Add($"{field.Label} is required.");
                }

                continue;
            }

            if (TryConvert(field, raw!, out var converted, out var problem))
            {
                values[field.Key] = converted;
            }
            else
            {
                errors.Add($"{field.Label} {problem}");
            }
        }

        return new FormValidation(values, errors);
    }

    private static bool IsBlank(JsonNode node) =>
        node is JsonValue value && value.TryGetValue<string>(out var text) && string.IsNullOrWhiteSpace(text);

    private static bool TryConvert(FormField field, JsonNode raw, out JsonNode? value, out string problem)
    {
        value = null;
        problem = string.Empty;
        switch (field.Type)
        {
            case FormFieldType.String or FormFieldType.Text or FormFieldType.HtmlText:
                if (!TryString(raw, out var text))
                {
                    problem = "must be text.";
                    return false;
                }

                var limit = field.MaxLength ?? DefaultMaxTextLength;
                if (text.Length > limit)
                {
                    problem = $"must be at most {limit} characters long.";
                    return false;
                }

                value = JsonValue.Create(text.Trim());
                return true;

            case FormFieldType.Integer:
                if (!TryInteger(raw, out var number))
                {
                    problem = "must be a whole number.";
                    return false;
                }

                if ((field.Min is { } min && number < min) || (field.Max is { } max && number > max))
                {
                    problem = RangeText(field);
                    return false;
                }

                value = JsonValue.Create(number);
                return true;

            case FormFieldType.Money:
                if (!TryDecimal(raw, out var amount) || amount < 0)
                {
                    problem = "must be a non-negative amount.";
                    return false;
                }

                value = JsonValue.Create(amount);
                return true;

            case FormFieldType.Boolean:
                if (!TryBoolean(raw, out var flag))
                {
                    problem = "must be true or false.";
                    return false;
                }

                value = JsonValue.Create(flag);
                return true;

            case FormFieldType.SelectString:
                if (!TryString(raw, out var choice) || !IsChoice(field, choice))
                {
                    problem = $"must be one of: {string.Join(", ", field.Choices ?? [])}.";
                    return false;
                }

                value = JsonValue.Create(choice);
                return true;

            case FormFieldType.SelectStringMulti:
                var picked = new JsonArray();
                IEnumerable<JsonNode?> items = raw is JsonArray array ? array : [raw];
                foreach (var item in items)
                {
                    if (item is null || !TryString(item, out var one) || !IsChoice(field, one))
                    {
                        problem = $"may only contain: {string.Join(", ", field.Choices ?? [])}.";
                        return false;
                    }

                    if (!picked.Any(p => p!.GetValue<string>() == one))
                    {
                        picked.Add(one);
                    }
                }

                value = picked;
                return true;

            case FormFieldType.Date:
                if (!TryString(raw, out var date) || !DateOnly.TryParseExact(date, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
                {
                    problem = "must be a date (YYYY-MM-DD).";
                    return false;
                }

                value = JsonValue.Create(date);
                return true;

            case FormFieldType.Time:
                if (!TryString(raw, out var time) || !TimeOnly.TryParse(time, CultureInfo.InvariantCulture, out _))
                {
                    problem = "must be a time (HH:MM).";
                    return false;
                }

                value = JsonValue.Create(time);
                return true;

            default:
                throw new ArgumentOutOfRangeException(nameof(field), field.Type, "Unknown form field type.");
        }
    }

    private static string RangeText(FormField field) => (field.Min, field.Max) switch
    {
        ({ } min, { } max) => $"must be between {min} and {max}.",
        ({ } min, null) => $"must be at least {min}.",
        (null, { } max) => $"must be at most {max}.",
        _ => "is out of range.",
    };

    private static bool IsChoice(FormField field, string value) =>
        field.Choices is null || field.Choices.Count == 0 || field.Choices.Contains(value, StringComparer.Ordinal);

    private static bool TryString(JsonNode node, out string text)
    {
        text = string.Empty;
        if (node is JsonValue value && value.TryGetValue<string>(out var s))
        {
            text = s;
            return true;
        }

        return false;
    }

    private static bool TryInteger(JsonNode node, out long number)
    {
        number = 0;
        if (node is not JsonValue value)
        {
            return false;
        }

        if (value.TryGetValue<long>(out number))
        {
            return true;
        }

        if (value.TryGetValue<double>(out var d) && Math.Abs(d % 1) < double.Epsilon && d is >= long.MinValue and <= long.MaxValue)
        {
            number = (long)d;
            return true;
        }

        return value.TryGetValue<string>(out var s) && long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out number);
    }

    private static bool TryDecimal(JsonNode node, out decimal number)
    {
        number = 0;
        if (node is not JsonValue value)
        {
            return false;
        }

        if (value.TryGetValue<decimal>(out number))
        {
            return true;
        }

        return value.TryGetValue<string>(out var s) && decimal.TryParse(s.Trim(), NumberStyles.Number, CultureInfo.InvariantCulture, out number);
    }

    private static bool TryBoolean(JsonNode node, out bool flag)
    {
        flag = false;
        if (node is not JsonValue value)
        {
            return false;
        }

        if (value.TryGetValue<bool>(out flag))
        {
            return true;
        }

        return value.TryGetValue<string>(out var s) && bool.TryParse(s.Trim(), out flag);
    }
}

/// <summary>Maps Waldur's wire names for form field types.</summary>
public static class FormFieldTypes
{
    public static bool TryParse(string? waldurType, out FormFieldType type)
    {
        type = waldurType switch
        {
            "string" => FormFieldType.String,
            "text" => FormFieldType.Text,
            "html_text" => FormFieldType.HtmlText,
            "integer" => FormFieldType.Integer,
            "money" => FormFieldType.Money,
            "boolean" => FormFieldType.Boolean,
            "select_string" => FormFieldType.SelectString,
            "select_string_multi" => FormFieldType.SelectStringMulti,
            "date" => FormFieldType.Date,
            "time" => FormFieldType.Time,
            _ => (FormFieldType)(-1),
        };
        return Enum.IsDefined(type);
    }

    public static string ToWaldur(FormFieldType type) => type switch
    {
        FormFieldType.String => "string",
        FormFieldType.Text => "text",
        FormFieldType.HtmlText => "html_text",
        FormFieldType.Integer => "integer",
        FormFieldType.Money => "money",
        FormFieldType.Boolean => "boolean",
        FormFieldType.SelectString => "select_string",
        FormFieldType.SelectStringMulti => "select_string_multi",
        FormFieldType.Date => "date",
        FormFieldType.Time => "time",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown form field type."),
    };
}
