using CmpWaldurAdapter.Knowledge.Sources;

namespace CmpWaldurAdapter.UnitTests.Knowledge;

public sealed class SourceInputTests
{
    [Theory]
    [InlineData("database:0123456789abcdef0123456789ABCDEF", "Database")]
    [InlineData("page:01234567-89ab-cdef-0123-456789abcdef", "Page")]
    [InlineData("0123456789abcdef0123456789abcdef", "Unknown")]
    [InlineData("https://www.notion.so/acme/Team-Handbook-0123456789abcdef0123456789abcdef", "Unknown")]
    [InlineData("https://www.notion.so/0123456789abcdef0123456789abcdef?v=fedcba9876543210fedcba9876543210", "Unknown")]
    public void Notion_ids_are_normalised_to_the_dashed_form(string raw, string kind)
    {
        var reference = NotionReference.Parse(raw);

        Assert.Equal("01234567-89ab-cdef-0123-456789abcdef", reference.Id);
        Assert.Equal(kind, reference.Kind.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("page:")]
    [InlineData("0123456789abcdef")]
    [InlineData("../../v1/users")]
    [InlineData("0123456789abcdef0123456789abcdeg")]
    [InlineData("0123456789abcdef0123456789abcdef/../x")]
    public void Anything_else_is_not_a_notion_id(string raw)
    {
        var error = Assert.Throws<SourceRejectedException>(() => NotionReference.Parse(raw));

        Assert.Equal(SourceKind.Notion, error.Kind);
    }

    [Theory]
    [InlineData("Team Handbook", "0123abcd", "md", "team-handbook-0123abcd.md")]
    [InlineData("Ünïcödé — Straße", null, "md", "ünïcödé-straße.md")]
    [InlineData("Политика возврата", null, "md", "политика-возврата.md")]
    [InlineData("a/b\\c:d*e?f\"g<h>i|j", null, "md", "a-b-c-d-e-f-g-h-i-j.md")]
    [InlineData("../../etc/passwd", null, "txt", "etc-passwd.txt")]
    [InlineData("   ", null, "pdf", "document.pdf")]
    public void File_names_are_safe_slugs(string title, string? suffix, string extension, string expected) =>
        Assert.Equal(expected, SourceHttp.FileName(title, suffix, extension));

    [Theory]
    [InlineData("https://example.com/a?b=c")]
    [InlineData("http://example.com")]
    [InlineData("  https://example.com/  ")]
    public void Plain_http_and_https_urls_parse(string url) =>
        Assert.NotNull(RemoteAddressGuard.ParseUrl(url, SourceKind.Url));

    [Theory]
    [InlineData("file:///etc/passwd")]
    [InlineData("ftp://example.com/")]
    [InlineData("data:text/html,<p>x</p>")]
    [InlineData("javascript:alert(1)")]
    [InlineData("https://user@example.com/")]
    [InlineData("https://user:pw@example.com/")]
    [InlineData("example.com/page")]
    [InlineData("/etc/passwd")]
    [InlineData("")]
    public void Other_urls_are_rejected(string url) =>
        Assert.Throws<SourceRejectedException>(() => RemoteAddressGuard.ParseUrl(url, SourceKind.Url));
}
