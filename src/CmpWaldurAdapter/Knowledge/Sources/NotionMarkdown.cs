using System.Text;
using System.Text.Json;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// Renders Notion block objects (https://developers.notion.com/reference/block) as Markdown. Children
/// are loaded on demand through <c>loadChildren</c>, so nesting follows <c>has_children</c>.
/// </summary>
internal sealed class NotionMarkdown(Func<string, Task<IReadOnlyList<JsonElement>>> loadChildren, int maxDepth)
{
    private readonly StringBuilder _out = new();
    private bool _lastWasListItem;

    public string Text => _out.Length == 0 ? string.Empty : _out.ToString() + "\n";

    public async Task RenderAsync(IReadOnlyList<JsonElement> blocks, string indent = "", int depth = 0)
    {
        var number = 0;
        foreach (var block in blocks)
        {
            var type = Str(block, "type") ?? string.Empty;
            number = type == "numbered_list_item" ? number + 1 : 0;
            var data = block.TryGetProperty(type, out var d) ? d : default;
            var text = data.ValueKind == JsonValueKind.Object ? RichText(data, "rich_text") : string.Empty;
            var childIndent = indent;
            var descend = true;

            switch (type)
            {
                case "paragraph":
                    if (text.Length > 0)
                    {
                        Block(indent, text);
                    }

                    break;
                case "heading_1" or "heading_2" or "heading_3":
                    Block(indent, new string('#', type[^1] - '0') + " " + text);
                    break;
                case "bulleted_list_item" or "toggle":
                    childIndent = ListItem(indent, "- ", text);
                    break;
                case "numbered_list_item":
                    childIndent = ListItem(indent, $"{number}. ", text);
                    break;
                case "to_do":
                    var done = data.ValueKind == JsonValueKind.Object && data.TryGetProperty("checked", out var c) && c.ValueKind == JsonValueKind.True;
                    childIndent = ListItem(indent, done ? "- [x] " : "- [ ] ", text);
                    break;
                case "quote":
                    Block(indent, "> " + text.Replace("\n", "\n> ", StringComparison.Ordinal));
                    break;
                case "callout":
                    var icon = data.ValueKind == JsonValueKind.Object && data.TryGetProperty("icon", out var i) && Str(i, "type") == "emoji" ? Str(i, "emoji") + " " : string.Empty;
                    Block(indent, "> " + icon + text.Replace("\n", "\n> ", StringComparison.Ordinal));
                    break;
                case "code":
                    var language = Str(data, "language") is { } l && l != "plain text" ? l : string.Empty;
                    Block(indent, $"```{language}\n{PlainText(data, "rich_text")}\n```");
                    break;
                case "equation":
                    Block(indent, $"$${Str(data, "expression")}$$");
                    break;
                case "divider":
                    Block(indent, "---");
                    break;
                case "child_page":
                    // A sub-page is its own document when shared; here only its title marks the place.
                    Block(indent, "Sub-page: " + Str(data, "title"));
                    descend = false;
                    break;
                case "child_database":
                    Block(indent, "Database: " + Str(data, "title"));
                    descend = false;
                    break;
                case "table":
                    await TableAsync(block, data, indent);
                    descend = false;
                    break;
                default:
                    // column_list, column, synced_block and others: no text of their own, but their children count.
                    break;
            }

            if (descend && HasChildren(block) && depth + 1 < maxDepth && Str(block, "id") is { } id)
            {
                await RenderAsync(await loadChildren(id), childIndent, depth + 1);
            }
        }
    }

    private async Task TableAsync(JsonElement block, JsonElement data, string indent)
    {
        if (!HasChildren(block) || Str(block, "id") is not { } id)
        {
            return;
        }

        var rows = new List<string>();
        foreach (var row in await loadChildren(id))
        {
            if (Str(row, "type") != "table_row" || !row.TryGetProperty("table_row", out var r) || !r.TryGetProperty("cells", out var cells))
            {
                continue;
            }

            var texts = cells.EnumerateArray().Select(cell => RichTextArray(cell).Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal)).ToList();
            rows.Add("| " + string.Join(" | ", texts) + " |");
            if (rows.Count == 1)
            {
                rows.Add("|" + string.Concat(Enumerable.Repeat(" --- |", texts.Count)));
            }
        }

        if (rows.Count > 0)
        {
            Block(indent, string.Join("\n", rows));
        }
    }

    private void Block(string indent, string text)
    {
        if (_out.Length > 0)
        {
            _out.Append("\n\n");
        }

        _out.Append(Indent(indent, text));
        _lastWasListItem = false;
    }

    private string ListItem(string indent, string marker, string text)
    {
        if (_out.Length > 0)
        {
            _out.Append(_lastWasListItem ? "\n" : "\n\n");
        }

        var childIndent = indent + new string(' ', marker.Length);
        _out.Append(indent).Append(marker).Append(text.Replace("\n", "\n" + childIndent, StringComparison.Ordinal));
        _lastWasListItem = true;
        return childIndent;
    }

    private static string Indent(string indent, string text) =>
        indent.Length == 0 ? text : indent + text.Replace("\n", "\n" + indent, StringComparison.Ordinal);

    private static bool HasChildren(JsonElement block) =>
        block.TryGetProperty("has_children", out var h) && h.ValueKind == JsonValueKind.True;

    private static string? Str(JsonElement element, string name) => SourceJson.Str(element, name);

    internal static string RichText(JsonElement data, string name) =>
        data.TryGetProperty(name, out var items) ? RichTextArray(items) : string.Empty;

    private static string PlainText(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var items) && items.ValueKind == JsonValueKind.Array
            ? string.Concat(items.EnumerateArray().Select(item => Str(item, "plain_text")))
            : string.Empty;

    /// <summary>Rich text with its annotations as Markdown; the whitespace at the edges stays outside the markers.</summary>
    internal static string RichTextArray(JsonElement items)
    {
        if (items.ValueKind != JsonValueKind.Array)
        {
            return string.Empty;
        }

        var builder = new StringBuilder();
        foreach (var item in items.EnumerateArray())
        {
            var text = Str(item, "plain_text") ?? string.Empty;
            var core = text.Trim();
            if (core.Length == 0)
            {
                builder.Append(text);
                continue;
            }

            var annotations = item.TryGetProperty("annotations", out var a) ? a : default;
            if (Flag(annotations, "code"))
            {
                core = "`" + core + "`";
            }

            if (Flag(annotations, "bold"))
            {
                core = "**" + core + "**";
            }

            if (Flag(annotations, "italic"))
            {
                core = "*" + core + "*";
            }

            if (Flag(annotations, "strikethrough"))
            {
                core = "~~" + core + "~~";
            }

            if (Str(item, "href") is { Length: > 0 } href)
            {
                core = $"[{core}]({href})";
            }

            var lead = text.Length - text.TrimStart().Length;
            var trail = text.Length - text.TrimEnd().Length;
            builder.Append(text, 0, lead).Append(core).Append(text, text.Length - trail, trail);
        }

        return builder.ToString();
    }

    private static bool Flag(JsonElement annotations, string name) =>
        annotations.ValueKind == JsonValueKind.Object && annotations.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.True;
}
