using System.Net;
using System.Text;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>HTML turned into readable Markdown-ish text, and the page's title.</summary>
internal sealed record HtmlTextResult(string? Title, string Text);

/// <summary>
/// A small HTML-to-text converter for web pages and Confluence bodies: drops scripts, styles and
/// navigation; keeps headings (#), paragraphs, list items (- / 1.), table rows (| a | b |), quotes
/// and preformatted blocks; decodes entities. A single forward scan, linear in the input, that never
/// throws on malformed markup.
/// </summary>
internal static class HtmlText
{
    // Their content is not text: skipped to the matching end tag as browsers do.
    private static readonly HashSet<string> RawTextElements =
        new(["script", "style", "title", "textarea", "noscript", "template", "iframe", "xmp", "noembed", "noframes"], StringComparer.Ordinal);

    // Rendered as nothing useful for reading: skipped with nesting.
    private static readonly HashSet<string> HiddenElements = new(["nav", "select", "svg", "math"], StringComparer.Ordinal);

    private static readonly HashSet<string> ParagraphElements = new(
        ["p", "section", "article", "header", "footer", "main", "aside", "figure", "figcaption", "address", "details", "summary",
         "fieldset", "form", "dl", "caption", "hgroup", "center", "body", "html"],
        StringComparer.Ordinal);

    private static readonly HashSet<string> LineElements = new(["div", "dt", "dd", "legend", "option"], StringComparer.Ordinal);

    public static HtmlTextResult Convert(string html)
    {
        ArgumentNullException.ThrowIfNull(html);
        var writer = new Writer();
        string? title = null;
        var i = 0;
        var textStart = 0;
        while (i < html.Length)
        {
            if (html[i] != '<')
            {
                i++;
                continue;
            }

            writer.Text(html, textStart, i);
            if (Matches(html, i, "<!--"))
            {
                var end = html.IndexOf("-->", i + 4, StringComparison.Ordinal);
                i = end < 0 ? html.Length : end + 3;
            }
            else if (i + 1 < html.Length && html[i + 1] is '!' or '?')
            {
                var end = html.IndexOf('>', i + 2);
                i = end < 0 ? html.Length : end + 1;
            }
            else if (TryReadTag(html, i, out var name, out var closing, out var selfClosing, out var next))
            {
                i = next;
                if (!closing && RawTextElements.Contains(name))
                {
                    var end = IndexOfEndTag(html, i, name);
                    if (name == "title" && title is null)
                    {
                        title = Collapse(WebUtility.HtmlDecode(html[i..(end < 0 ? html.Length : end)]));
                    }

                    i = end < 0 ? html.Length : SkipPast(html, end, '>');
                }
                else
                {
                    writer.Tag(name, closing, selfClosing);
                }
            }
            else
            {
                // A '<' that starts no tag ("a < b") is text.
                textStart = i;
                i++;
                continue;
            }

            textStart = i;
        }

        writer.Text(html, textStart, html.Length);
        var text = writer.Finish();
        if (string.IsNullOrWhiteSpace(title))
        {
            title = text.Split('\n').FirstOrDefault(l => l.StartsWith("# ", StringComparison.Ordinal))?[2..].Trim();
        }

        return new HtmlTextResult(string.IsNullOrWhiteSpace(title) ? null : title, text);
    }

    private static bool Matches(string html, int at, string text) =>
        string.CompareOrdinal(html, at, text, 0, text.Length) == 0;

    private static int SkipPast(string html, int from, char c)
    {
        var end = html.IndexOf(c, from);
        return end < 0 ? html.Length : end + 1;
    }

    private static int IndexOfEndTag(string html, int from, string name)
    {
        var at = from;
        while (true)
        {
            var end = html.IndexOf("</" + name, at, StringComparison.OrdinalIgnoreCase);
            if (end < 0)
            {
                return -1;
            }

            var after = end + 2 + name.Length;
            if (after >= html.Length || !char.IsAsciiLetterOrDigit(html[after]))
            {
                return end;
            }

            at = after;
        }
    }

    /// <summary>Reads a start or end tag at <paramref name="at"/>; quoted attribute values may contain '&gt;'.</summary>
    private static bool TryReadTag(string html, int at, out string name, out bool closing, out bool selfClosing, out int next)
    {
        name = string.Empty;
        selfClosing = false;
        next = at;
        var i = at + 1;
        closing = i < html.Length && html[i] == '/';
        if (closing)
        {
            i++;
        }

        if (i >= html.Length || !char.IsAsciiLetter(html[i]))
        {
            return false;
        }

        var nameStart = i;
        while (i < html.Length && (char.IsAsciiLetterOrDigit(html[i]) || html[i] is '-' or ':'))
        {
            i++;
        }

        name = html[nameStart..i].ToLowerInvariant();
        var afterEquals = false;
        while (i < html.Length)
        {
            var c = html[i];
            if (c == '>')
            {
                selfClosing = html[i - 1] == '/';
                next = i + 1;
                return true;
            }

            if (afterEquals && c is '"' or '\'')
            {
                var end = html.IndexOf(c, i + 1);
                if (end < 0)
                {
                    // An unterminated value swallows the rest, as in a browser; stopping keeps this linear.
                    next = html.Length;
                    return true;
                }

                i = end + 1;
                afterEquals = false;
                continue;
            }

            if (c == '=')
            {
                afterEquals = true;
            }
            else if (!char.IsWhiteSpace(c))
            {
                afterEquals = false;
            }

            i++;
        }

        next = html.Length;
        return true;
    }

    internal static string Collapse(string text)
    {
        var builder = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c))
            {
                space = builder.Length > 0;
                continue;
            }

            if (space)
            {
                builder.Append(' ');
                space = false;
            }

            builder.Append(c);
        }

        return builder.ToString();
    }

    /// <summary>Builds the output with lazy breaks, so empty elements and nested blocks leave no stray blank lines.</summary>
    private sealed class Writer
    {
        private readonly StringBuilder _out = new();
        private readonly Stack<ListState> _lists = new();
        private readonly Stack<TableState> _tables = new();
        private readonly Stack<string> _hidden = new();
        private int _pendingBreaks;
        private bool _space;
        private bool _atLineStart = true;
        private string? _marker;
        private int _quotes;
        private int _pre;
        private bool _skipPreNewline;

        private bool InCell => _tables.Count > 0 && _tables.Peek().InCell;

        public void Text(string html, int start, int end)
        {
            if (end <= start || _hidden.Count > 0)
            {
                return;
            }

            var text = WebUtility.HtmlDecode(html[start..end]);
            if (_pre > 0)
            {
                WritePre(text.Replace("\r\n", "\n", StringComparison.Ordinal));
                return;
            }

            foreach (var c in text)
            {
                if (char.IsWhiteSpace(c))
                {
                    _space = true;
                    continue;
                }

                if (_space && !_atLineStart && _pendingBreaks == 0 && _out.Length > 0 && !char.IsWhiteSpace(_out[^1]))
                {
                    _out.Append(' ');
                }

                _space = false;
                BeginContent();
                if (c == '|' && InCell)
                {
                    _out.Append('\\');
                }

                _out.Append(c);
            }
        }

        public void Tag(string name, bool closing, bool selfClosing)
        {
            if (HiddenElements.Contains(name))
            {
                if (closing && _hidden.Count > 0 && _hidden.Peek() == name)
                {
                    _hidden.Pop();
                }
                else if (!closing && !selfClosing)
                {
                    _hidden.Push(name);
                }

                return;
            }

            if (_hidden.Count > 0)
            {
                return;
            }

            switch (name)
            {
                case "br":
                    Break(1);
                    break;
                case "hr":
                    Break(2);
                    Literal("---");
                    Break(2);
                    break;
                case "h1" or "h2" or "h3" or "h4" or "h5" or "h6":
                    Break(2);
                    _marker = closing ? null : new string('#', name[1] - '0') + " ";
                    break;
                case "ul" or "ol":
                    if (closing)
                    {
                        if (_lists.Count > 0)
                        {
                            _lists.Pop();
                        }
                    }
                    else if (!selfClosing)
                    {
                        _lists.Push(new ListState(name == "ol"));
                    }

                    Break(_lists.Count == 0 ? 2 : 1);
                    break;
                case "li":
                    Break(1);
                    _marker = null;
                    if (!closing)
                    {
                        var list = _lists.Count > 0 ? _lists.Peek() : null;
                        var indent = new string(' ', 2 * Math.Max(0, _lists.Count - 1));
                        _marker = list is { Ordered: true } ? $"{indent}{++list.Counter}. " : indent + "- ";
                    }

                    break;
                case "blockquote":
                    Break(2);
                    _quotes = Math.Max(0, _quotes + (closing ? -1 : 1));
                    break;
                case "pre":
                    Pre(closing);
                    break;
                case "table":
                    Table(closing);
                    break;
                case "tr":
                    if (_tables.Count > 0)
                    {
                        EndRow();
                        _tables.Peek().InCell = false;
                    }

                    break;
                case "td" or "th":
                    Cell(closing);
                    break;
                default:
                    if (ParagraphElements.Contains(name))
                    {
                        Break(2);
                    }
                    else if (LineElements.Contains(name))
                    {
                        Break(1);
                    }

                    break;
            }
        }

        private void Pre(bool closing)
        {
            if (closing)
            {
                if (_pre == 0)
                {
                    return;
                }

                _pre--;
                if (_pre == 0)
                {
                    if (!_atLineStart)
                    {
                        _out.Append('\n');
                        _atLineStart = true;
                    }

                    Literal("```");
                    Break(2);
                }

                return;
            }

            if (_pre++ == 0)
            {
                Break(2);
                Literal("```");
                Break(1);
                _skipPreNewline = true;
            }
        }

        private void WritePre(string text)
        {
            foreach (var c in text)
            {
                if (_skipPreNewline)
                {
                    _skipPreNewline = false;
                    if (c == '\n')
                    {
                        continue;
                    }
                }

                if (c == '\n')
                {
                    BeginContent();
                    _out.Append('\n');
                    _atLineStart = true;
                    continue;
                }

                BeginContent();
                _out.Append(c);
            }
        }

        private void Table(bool closing)
        {
            if (closing)
            {
                if (_tables.Count > 0)
                {
                    EndRow();
                    _tables.Pop();
                }
            }
            else
            {
                EndRowIfOpen();
                _tables.Push(new TableState());
            }

            Break(2);
        }

        private void EndRowIfOpen()
        {
            if (_tables.Count > 0 && _tables.Peek().RowOpen)
            {
                EndRow();
            }
        }

        private void Cell(bool closing)
        {
            if (_tables.Count == 0)
            {
                return;
            }

            var table = _tables.Peek();
            if (closing)
            {
                table.InCell = false;
                return;
            }

            table.InCell = false;
            if (!table.RowOpen)
            {
                Break(1);
                table.RowOpen = true;
                table.Cells = 0;
                Literal("|");
            }
            else
            {
                _out.Append(" |");
            }

            table.Cells++;
            _out.Append(' ');
            _space = false;
            table.InCell = true;
        }

        private void EndRow()
        {
            var table = _tables.Peek();
            if (!table.RowOpen)
            {
                return;
            }

            table.InCell = false;
            table.RowOpen = false;
            _pendingBreaks = 0;
            _out.Append(" |");
            table.Rows++;
            if (table.Rows == 1)
            {
                // Markdown tables need a separator after the first row.
                _out.Append('\n');
                _atLineStart = true;
                Literal("|" + string.Concat(Enumerable.Repeat(" --- |", table.Cells)));
            }

            Break(1);
        }

        private void Break(int lines)
        {
            if (InCell)
            {
                _space = true;
                return;
            }

            _space = false;
            if (_marker is null)
            {
                _pendingBreaks = Math.Max(_pendingBreaks, lines);
            }
        }

        private void Literal(string text)
        {
            BeginContent();
            _out.Append(text);
        }

        private void BeginContent()
        {
            if (_pendingBreaks > 0)
            {
                if (_out.Length > 0)
                {
                    var have = 0;
                    for (var j = _out.Length - 1; j >= 0 && _out[j] == '\n'; j--)
                    {
                        have++;
                    }

                    _out.Append('\n', Math.Max(0, _pendingBreaks - have));
                }

                _atLineStart = true;
                _pendingBreaks = 0;
            }

            if (_atLineStart)
            {
                _atLineStart = false;
                for (var q = 0; q < _quotes; q++)
                {
                    _out.Append("> ");
                }

                if (_marker is not null)
                {
                    _out.Append(_marker);
                    _marker = null;
                }
            }
        }

        public string Finish()
        {
            var lines = _out.ToString().Split('\n').Select(l => l.TrimEnd());
            var builder = new StringBuilder();
            var blank = 0;
            foreach (var line in lines)
            {
                if (line.Length == 0)
                {
                    blank++;
                    continue;
                }

                if (builder.Length > 0)
                {
                    builder.Append('\n', Math.Min(blank, 1) + 1);
                }

                blank = 0;
                builder.Append(line);
            }

            return builder.Length == 0 ? string.Empty : builder.Append('\n').ToString();
        }

        private sealed class ListState(bool ordered)
        {
            public bool Ordered { get; } = ordered;

            public int Counter { get; set; }
        }

        private sealed class TableState
        {
            public bool RowOpen { get; set; }

            public bool InCell { get; set; }

            public int Cells { get; set; }

            public int Rows { get; set; }
        }
    }
}
