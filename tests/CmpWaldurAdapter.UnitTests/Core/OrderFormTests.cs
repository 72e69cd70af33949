using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Forms;

namespace CmpWaldurAdapter.UnitTests.Core;

public sealed class OrderFormTests
{
    private static readonly OrderForm Form = new(
    [
        new FormField("agent_name", FormFieldType.String, "Agent name", Required: true, MaxLength: 40),
        new FormField("tone", FormFieldType.SelectString, "Tone", Choices: ["friendly", "formal"], Default: "friendly"),
        new FormField("languages", FormFieldType.SelectStringMulti, "Languages", Choices: ["en", "de", "et"]),
        new FormField("escalate_after", FormFieldType.Integer, "Escalate after", Min: 1, Max: 10),
        new FormField("citations", FormFieldType.Boolean, "Citations", Default: "false"),
        new FormField("budget", FormFieldType.Money, "Budget"),
        new FormField("start", FormFieldType.Date, "Start"),
    ]);

    [Fact]
    public void Valid_answers_are_normalised_and_defaults_applied()
    {
        var result = Form.ValidateComplete(new JsonObject
        {
            ["name"] = "resource name",
            ["agent_name"] = "  Ada ",
            ["languages"] = new JsonArray("en", "de", "en"),
            ["escalate_after"] = "3",
            ["budget"] = "12.50",
            ["start"] = "2026-12-01",
        });

        Assert.True(result.IsValid, result.Summary);
        Assert.Equal("Ada", result.Values["agent_name"]!.GetValue<string>());
        Assert.Equal("friendly", result.Values["tone"]!.GetValue<string>());
        Assert.Equal(["en", "de"], result.Values["languages"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal(3L, result.Values["escalate_after"]!.GetValue<long>());
        Assert.False(result.Values["citations"]!.GetValue<bool>());
        Assert.Equal(12.50m, result.Values["budget"]!.GetValue<decimal>());
        Assert.False(result.Values.ContainsKey("name"));
    }

    [Theory]
    [InlineData("agent_name", null, "Agent name is required.")]
    [InlineData("agent_name", "\"\"", "Agent name is required.")]
    [InlineData("agent_name", "42", "Agent name must be text.")]
    [InlineData("tone", "\"rude\"", "Tone must be one of: friendly, formal.")]
    [InlineData("languages", "[\"en\",\"fr\"]", "Languages may only contain: en, de, et.")]
    [InlineData("escalate_after", "0", "Escalate after must be between 1 and 10.")]
    [InlineData("escalate_after", "2.5", "Escalate after must be a whole number.")]
    [InlineData("citations", "\"maybe\"", "Citations must be true or false.")]
    [InlineData("budget", "-1", "Budget must be a non-negative amount.")]
    [InlineData("start", "\"01/12/2026\"", "Start must be a date (YYYY-MM-DD).")]
    [InlineData("unknown_key", "1", "'unknown_key' is not a setting of this offering.")]
    public void Each_kind_of_bad_input_gets_a_readable_error(string key, string? json, string expected)
    {
        var input = new JsonObject { ["agent_name"] = "Ada" };
        if (json is null)
        {
            input.Remove(key);
        }
        else
        {
            input[key] = JsonNode.Parse(json);
        }

        var result = Form.ValidateComplete(input);

        Assert.False(result.IsValid);
        Assert.Contains(expected, result.Errors);
        Assert.StartsWith("The order cannot be accepted: ", result.Summary);
    }

    [Fact]
    public void Overlong_text_is_refused()
    {
        var result = Form.ValidateComplete(new JsonObject { ["agent_name"] = new string('x', 41) });

        Assert.Contains("Agent name must be at most 40 characters long.", result.Errors);
    }

    [Fact]
    public void A_change_only_checks_what_it_changes_and_keeps_the_rest()
    {
        var current = new JsonObject { ["agent_name"] = "Ada", ["tone"] = "friendly", ["escalate_after"] = 3 };

        var result = Form.ValidateChange(new JsonObject { ["tone"] = "formal" }, current);

        Assert.True(result.IsValid);
        Assert.Equal("formal", result.Values["tone"]!.GetValue<string>());
        Assert.Equal("Ada", result.Values["agent_name"]!.GetValue<string>());
        Assert.Equal("friendly", current["tone"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("string", FormFieldType.String)]
    [InlineData("select_string_multi", FormFieldType.SelectStringMulti)]
    [InlineData("html_text", FormFieldType.HtmlText)]
    public void Waldur_type_names_round_trip(string wire, FormFieldType type)
    {
        Assert.True(FormFieldTypes.TryParse(wire, out var parsed));
        Assert.Equal(type, parsed);
        Assert.Equal(wire, FormFieldTypes.ToWaldur(type));
        Assert.False(FormFieldTypes.TryParse("select_openstack_tenant", out _));
    }
}
