using CmpWaldurAdapter.Knowledge.Sources;

namespace CmpWaldurAdapter.UnitTests.Knowledge;

public sealed class HtmlTextTests
{
    private static string Text(string html) => HtmlText.Convert(html).Text;

    [Fact]
    public void Scripts_styles_comments_and_navigation_leave_no_text()
    {
        var text = Text("""
            <html><head><title>T</title><style>p{}</style><script>alert("x </p>")</script></head>
            <body><!-- hidden <p>no</p> --><nav><ul><li>Menu</li></ul></nav><noscript>Enable JS</noscript><p>Kept</p>
            <template><p>later</p></template><svg><text>chart</text></svg></body></html>
            """);

        Assert.Equal("Kept\n", text);
    }

    [Fact]
    public void The_title_comes_from_the_title_tag_else_the_first_heading()
    {
        Assert.Equal("A & B", HtmlText.Convert("<title>\n A &amp; B </title><h1>Other</h1>").Title);
        Assert.Equal("Heading", HtmlText.Convert("<p>x</p><h1>Heading</h1>").Title);
        Assert.Null(HtmlText.Convert("<p>no title</p>").Title);
    }

    [Fact]
    public void Headings_paragraphs_and_line_breaks()
    {
        Assert.Equal("# One\n\n## Two\n\nFirst line\nsecond line\n\nNext\n", Text("<h1>One</h1><h2>Two</h2><p>First line<br>second line</p><p>Next</p>"));
    }

    [Fact]
    public void Whitespace_collapses_and_entities_decode()
    {
        Assert.Equal("a b & c < d é ’ “x”\n", Text("<p>  a \n\t b &amp; c &lt; d &eacute; &#8217; &#x201C;x&#x201d;</p>"));
    }

    [Fact]
    public void Nested_lists_keep_their_structure_and_numbers()
    {
        var text = Text("<ul><li>a<ul><li>a1</li><li>a2</li></ul></li><li>b</li></ul><ol><li>one</li><li><p>two</p></li></ol>");

        Assert.Equal("- a\n  - a1\n  - a2\n- b\n\n1. one\n2. two\n", text);
    }

    [Fact]
    public void Tables_become_pipe_rows_with_a_header_separator_and_escaped_pipes()
    {
        var text = Text("<table><thead><tr><th>A</th><th>B</th></tr></thead><tbody><tr><td>1 | 2</td><td><p>x</p><p>y</p></td></tr><tr><td>3<td>4</table>");

        Assert.Equal("| A | B |\n| --- | --- |\n| 1 \\| 2 | x y |\n| 3 | 4 |\n", text);
    }

    [Fact]
    public void Quotes_rules_and_preformatted_text()
    {
        var text = Text("<blockquote><p>Quoted</p></blockquote><hr><pre>\n  keep   spacing\n\tand tabs</pre><p>after</p>");

        Assert.Equal("> Quoted\n\n---\n\n```\n  keep   spacing\n\tand tabs\n```\n\nafter\n", text);
    }

    [Theory]
    [InlineData("a < b and c > d", "a < b and c > d\n")]
    [InlineData("<p title=\"x > y\">quoted</p>", "quoted\n")]
    [InlineData("<p>unclosed", "unclosed\n")]
    [InlineData("<div><span>deep</div></span>", "deep\n")]
    [InlineData("<p a=\"never closed>text", "")]
    [InlineData("<script>never closed", "")]
    [InlineData("<!-- never closed", "")]
    [InlineData("", "")]
    [InlineData("</p></li></table>stray closers", "stray closers\n")]
    public void Malformed_markup_never_throws(string html, string expected)
    {
        Assert.Equal(expected, Text(html));
    }

    [Fact]
    public void Pathological_input_is_converted_in_linear_time()
    {
        var html = string.Concat(Enumerable.Repeat("<a b=\"", 50_000)) + string.Concat(Enumerable.Repeat("<p x='", 50_000));
        var clock = System.Diagnostics.Stopwatch.StartNew();

        HtmlText.Convert(html);
        HtmlText.Convert(string.Concat(Enumerable.Repeat("<<<<a", 200_000)));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
    }
}
