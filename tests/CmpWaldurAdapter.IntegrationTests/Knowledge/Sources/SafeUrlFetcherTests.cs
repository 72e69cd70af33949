using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using CmpWaldurAdapter.Knowledge.Sources;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Sources;

/// <summary>
/// The URL reader against a real loopback web server. Refused addresses are never connected to: the
/// tests that name private or metadata addresses expect a refusal before any packet is sent.
/// </summary>
public sealed class SafeUrlFetcherTests : IAsyncLifetime
{
    private LoopbackSite _site = null!;

    public async Task InitializeAsync() => _site = await LoopbackSite.StartAsync();

    public async Task DisposeAsync() => await _site.DisposeAsync();

    private static SafeUrlFetcher Fetcher(bool allowLoopback = true, IHostAddressResolver? resolver = null, params (string Key, string Value)[] settings)
    {
        var values = new Dictionary<string, string?> { ["Knowledge:Url:AllowLoopback"] = allowLoopback ? "true" : "false" };
        foreach (var (key, value) in settings)
        {
            values[key] = value;
        }

        return SourcesHost.Build(values, resolver: resolver).GetRequiredService<SafeUrlFetcher>();
    }

    [Fact]
    public async Task An_html_page_becomes_a_markdown_document_titled_from_its_title_tag()
    {
        var document = await Fetcher().FetchAsync(_site.At("page.html"), CancellationToken.None);

        Assert.Equal("Acme & Co — Returns", document.Title);
        Assert.Equal("text/markdown", document.ContentType);
        Assert.Equal("acme-co-returns.md", document.FileName);
        Assert.Equal("etag:\"v1\"", document.Version);
        Assert.Equal("url:" + _site.At("page.html"), document.ExternalId);
        Assert.Equal(new Uri(_site.At("page.html")), document.SourceUrl);
        Assert.Equal(
            """
            # Acme & Co — Returns

            # Returns policy

            Items can be returned within 30 days. Refunds take 5–7 days.

            - Keep the receipt
            - Use the original box

            | Item | Window |
            | --- | --- |
            | Shoes | 30 days |

            """.Replace("\r\n", "\n"),
            Encoding.UTF8.GetString(document.Content));
    }

    [Fact]
    public async Task Other_allowed_types_are_kept_as_they_are_and_versioned_by_their_hash()
    {
        var document = await Fetcher().FetchAsync(_site.At("notes.txt"), CancellationToken.None);

        Assert.Equal("text/plain", document.ContentType);
        Assert.Equal("notes.txt", document.FileName);
        Assert.Equal("plain notes\n", Encoding.UTF8.GetString(document.Content));
        Assert.Equal("sha256:" + Convert.ToHexStringLower(SHA256.HashData("plain notes\n"u8)), document.Version);
    }

    [Theory]
    [InlineData("http://127.0.0.1:{port}/page.html")]
    [InlineData("http://localhost:{port}/page.html")]
    [InlineData("http://[::1]:{port}/page.html")]
    [InlineData("http://[::ffff:127.0.0.1]:{port}/page.html")]
    [InlineData("http://2130706433:{port}/page.html")]
    [InlineData("http://0x7f.1:{port}/page.html")]
    [InlineData("http://0177.0.0.1:{port}/page.html")]
    [InlineData("http://127.0.0.1.:{port}/page.html")]
    [InlineData("http://127.1:{port}/page.html")]
    public async Task Loopback_in_any_spelling_is_refused_unless_allowed_and_never_contacted(string template)
    {
        var url = template.Replace("{port}", _site.Port.ToString(), StringComparison.Ordinal);

        var error = await Assert.ThrowsAsync<SourceRejectedException>(() => Fetcher(allowLoopback: false).FetchAsync(url, CancellationToken.None));

        Assert.Contains("loopback", error.Message);
        Assert.Equal(SourceKind.Url, error.Kind);
        Assert.Empty(_site.Requests);
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    [InlineData("http://[::ffff:169.254.169.254]/latest/meta-data/")]
    [InlineData("http://2852039166/latest/meta-data/")]
    [InlineData("http://0xa9fea9fe/latest/meta-data/")]
    [InlineData("http://0251.0376.0251.0376/")]
    [InlineData("http://10.0.0.1/")]
    [InlineData("http://0xa.1/")]
    [InlineData("http://167772161/")]
    [InlineData("http://172.16.0.1/")]
    [InlineData("http://192.168.1.1/")]
    [InlineData("http://100.64.0.1/")]
    [InlineData("http://0.0.0.0/")]
    [InlineData("http://224.0.0.1/")]
    [InlineData("http://255.255.255.255/")]
    [InlineData("http://[fe80::1]/")]
    [InlineData("http://[fc00::1]/")]
    [InlineData("http://[fd12:3456::1]/")]
    [InlineData("http://[::]/")]
    [InlineData("http://[::ffff:10.0.0.1]/")]
    [InlineData("http://[64:ff9b::a9fe:a9fe]/")]
    [InlineData("http://[2002:a9fe:a9fe::1]/")]
    public async Task Internal_addresses_stay_refused_even_when_loopback_is_allowed(string url)
    {
        var error = await Assert.ThrowsAsync<SourceRejectedException>(() => Fetcher(allowLoopback: true).FetchAsync(url, CancellationToken.None));

        Assert.Contains("only public internet addresses", error.Message);
    }

    [Theory]
    [InlineData("file:///etc/passwd")]
    [InlineData("ftp://example.com/file.txt")]
    [InlineData("data:text/plain,hello")]
    [InlineData("javascript:alert(1)")]
    [InlineData("gopher://example.com/")]
    [InlineData("http://user:secret@example.com/")]
    [InlineData("http://example.com@127.0.0.1/")]
    [InlineData("/etc/passwd")]
    [InlineData("not a url")]
    [InlineData("")]
    public async Task Only_plain_http_and_https_urls_are_accepted(string url)
    {
        await Assert.ThrowsAsync<SourceRejectedException>(() => Fetcher(allowLoopback: false).FetchAsync(url, CancellationToken.None));
    }

    [Theory]
    [InlineData("http://169.254.169.254/latest/meta-data/")]
    [InlineData("http://10.0.0.1:{port}/page.html")]
    [InlineData("http://[::ffff:a9fe:a9fe]/")]
    [InlineData("file:///etc/passwd")]
    public async Task A_redirect_is_checked_like_the_first_address(string target)
    {
        var to = target.Replace("{port}", _site.Port.ToString(), StringComparison.Ordinal);

        await Assert.ThrowsAsync<SourceRejectedException>(() =>
            Fetcher(allowLoopback: true).FetchAsync(_site.At("redirect?to=" + Uri.EscapeDataString(to)), CancellationToken.None));

        Assert.Single(_site.Requests);
    }

    [Fact]
    public async Task An_allowed_redirect_is_followed_and_the_final_address_kept()
    {
        var start = _site.At("redirect?to=" + Uri.EscapeDataString("/notes.txt"));

        var document = await Fetcher().FetchAsync(start, CancellationToken.None);

        Assert.Equal(new Uri(_site.At("notes.txt")), document.SourceUrl);
        Assert.Equal("url:" + new Uri(start).AbsoluteUri, document.ExternalId);
    }

    [Fact]
    public async Task More_redirects_than_allowed_are_refused()
    {
        var error = await Assert.ThrowsAsync<SourceRejectedException>(() =>
            Fetcher(settings: ("Knowledge:Url:MaxRedirects", "5")).FetchAsync(_site.At("loop/0"), CancellationToken.None));

        Assert.Contains("more than 5 times", error.Message);
        Assert.Equal(6, _site.Count("/loop/"));
    }

    [Fact]
    public async Task A_body_declared_larger_than_the_limit_is_refused_before_reading()
    {
        var error = await Assert.ThrowsAsync<SourceRejectedException>(() =>
            Fetcher(settings: ("Knowledge:Url:MaxBytes", "65536")).FetchAsync(_site.At("big-declared"), CancellationToken.None));

        Assert.Contains("65,536 bytes limit", error.Message);
        Assert.Contains("declares 200,000 bytes", error.Message);
    }

    [Fact]
    public async Task A_body_without_a_length_is_cut_off_at_the_limit()
    {
        var error = await Assert.ThrowsAsync<SourceRejectedException>(() =>
            Fetcher(settings: ("Knowledge:Url:MaxBytes", "65536")).FetchAsync(_site.At("big-chunked"), CancellationToken.None));

        Assert.Contains("sent more than that", error.Message);
    }

    [Fact]
    public async Task A_body_within_the_limit_passes()
    {
        var document = await Fetcher(settings: ("Knowledge:Url:MaxBytes", "200000")).FetchAsync(_site.At("big-chunked"), CancellationToken.None);

        Assert.Equal(200_000, document.Content.Length);
    }

    [Theory]
    [InlineData("image.png", "image/png")]
    [InlineData("untyped", "did not say")]
    public async Task Content_of_a_type_not_accepted_is_refused(string path, string expected)
    {
        var error = await Assert.ThrowsAsync<SourceRejectedException>(() => Fetcher().FetchAsync(_site.At(path), CancellationToken.None));

        Assert.Contains(expected, error.Message);
    }

    [Theory]
    [InlineData("slow")]
    [InlineData("trickle")]
    public async Task A_site_that_is_too_slow_fails_with_a_clear_timeout(string path)
    {
        var clock = Stopwatch.StartNew();

        var error = await Assert.ThrowsAsync<SourceUnavailableException>(() =>
            Fetcher(settings: ("Knowledge:Url:Timeout", "00:00:01")).FetchAsync(_site.At(path), CancellationToken.None));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        Assert.Contains("did not answer within 1 seconds", error.Message);
        Assert.True(error.IsTransient);
    }

    [Fact]
    public async Task Server_errors_are_retried_then_reported_as_unavailable()
    {
        var error = await Assert.ThrowsAsync<SourceUnavailableException>(() =>
            Fetcher(settings: ("Knowledge:Url:RetryAttempts", "2")).FetchAsync(_site.At("status/503"), CancellationToken.None));

        Assert.Contains("HTTP 503", error.Message);
        Assert.Equal(3, _site.Count("/status/503"));
    }

    [Fact]
    public async Task A_missing_page_is_not_found()
    {
        await Assert.ThrowsAsync<SourceNotFoundException>(() => Fetcher().FetchAsync(_site.At("status/404"), CancellationToken.None));
    }

    [Fact]
    public async Task The_connection_goes_to_the_address_that_was_checked_not_a_later_dns_answer()
    {
        // The second answer would be a rebinding attack; 127.0.0.2 has no server, so using it fails the fetch.
        var resolver = new ScriptedResolver().Answer("rebind.test", ["127.0.0.1"], ["127.0.0.2"]);

        var document = await Fetcher(resolver: resolver).FetchAsync($"http://rebind.test:{_site.Port}/notes.txt", CancellationToken.None);

        Assert.Equal("plain notes\n", Encoding.UTF8.GetString(document.Content));
        Assert.Equal(1, resolver.Calls("rebind.test"));
    }

    [Fact]
    public async Task A_name_with_any_internal_address_is_refused()
    {
        var resolver = new ScriptedResolver().Answer("mixed.test", ["127.0.0.1", "10.0.0.1"]);

        var error = await Assert.ThrowsAsync<SourceRejectedException>(() =>
            Fetcher(resolver: resolver).FetchAsync($"http://mixed.test:{_site.Port}/notes.txt", CancellationToken.None));

        Assert.Contains("private network", error.Message);
        Assert.Empty(_site.Requests);
    }

    [Fact]
    public async Task A_name_that_does_not_resolve_is_not_found()
    {
        var error = await Assert.ThrowsAsync<SourceNotFoundException>(() =>
            Fetcher(resolver: new ScriptedResolver()).FetchAsync("http://nowhere.test/", CancellationToken.None));

        Assert.Contains("nowhere.test", error.Message);
    }
}
