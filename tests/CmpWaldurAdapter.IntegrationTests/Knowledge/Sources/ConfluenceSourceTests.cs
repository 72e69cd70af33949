using System.Text;
using CmpWaldurAdapter.Knowledge.Sources;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Sources;

public sealed class ConfluenceSourceTests : IDisposable
{
    private const string EmailA = "ann@tenant-a.example";
    private const string TokenA = "ATATT3xFfGF0tenantAtoken0123456789abcdefghij";
    private const string EmailB = "bo@tenant-b.example";
    private const string TokenB = "ATATT3xFfGF0tenantBtoken9876543210zyxwvutsrq";

    private readonly ConfluenceFake _confluence = new();
    private readonly TestLogs _logs = new();

    public ConfluenceSourceTests()
    {
        _confluence.AddAccount(EmailA, TokenA);
        _confluence.AddAccount(EmailB, TokenB);
        _confluence.AddSpace("ENG", "Engineering", EmailA);
        _confluence.AddSpace("OPS", "Operations", EmailB);
    }

    public void Dispose() => _confluence.Dispose();

    private ConfluenceSource Source(bool allowLoopback = true, IHostAddressResolver? resolver = null, params (string Key, string Value)[] settings)
    {
        var values = new Dictionary<string, string?> { ["Knowledge:Url:AllowLoopback"] = allowLoopback ? "true" : "false" };
        foreach (var (key, value) in settings)
        {
            values[key] = value;
        }

        return SourcesHost.Build(values, _logs, resolver).GetRequiredService<ConfluenceSource>();
    }

    private List<string> AddPages(string space, int count) =>
        [.. Enumerable.Range(1, count).Select(i => _confluence.AddPage(space, $"Page {i}", $"<p>Body {i}</p>"))];

    private IEnumerable<int> Starts() => _confluence.Requests
        .Where(r => r.Path == "/wiki/rest/api/content")
        .Select(r => int.Parse(r.Query!["start"].Single()));

    [Fact]
    public async Task A_space_is_read_page_by_page_with_start_and_limit()
    {
        var ids = AddPages("ENG", 7);

        var documents = await Source(settings: ("Knowledge:Confluence:PageSize", "3")).ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None);

        Assert.Equal(Enumerable.Range(1, 7).Select(i => $"Page {i}"), documents.Select(d => d.Title));
        Assert.Equal([0, 3, 6], Starts());
        var request = _confluence.Requests.First(r => r.Path == "/wiki/rest/api/content");
        Assert.Equal("ENG", request.Query!["spaceKey"].Single());
        Assert.Equal("page", request.Query["type"].Single());
        Assert.Equal("current", request.Query["status"].Single());
        Assert.Equal("body.export_view,version", string.Join(',', request.Query["expand"])); // WireMock splits it at the comma
        Assert.Equal("3", request.Query["limit"].Single());

        var first = documents[0];
        Assert.Equal($"confluence:127.0.0.1:{ids[0]}", first.ExternalId);
        Assert.Equal("1", first.Version);
        Assert.Equal("text/markdown", first.ContentType);
        Assert.Equal($"page-1-{ids[0]}.md", first.FileName);
        Assert.Equal("# Page 1\n\nBody 1\n", Encoding.UTF8.GetString(first.Content));
        Assert.Equal(new Uri(_confluence.Url, $"wiki/spaces/ENG/pages/{ids[0]}/Page%2B1"), first.SourceUrl);
        Assert.Equal(new DateTimeOffset(2024, 3, 1, 9, 3, 0, TimeSpan.Zero), first.UpdatedAt);
    }

    [Fact]
    public async Task A_full_last_page_ends_the_listing_when_there_is_no_next_link()
    {
        AddPages("ENG", 6);

        var documents = await Source(settings: ("Knowledge:Confluence:PageSize", "3")).ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None);

        Assert.Equal(6, documents.Count);
        Assert.Equal([0, 3], Starts());
    }

    [Fact]
    public async Task A_limit_lowered_by_confluence_still_reads_every_page()
    {
        AddPages("ENG", 5);
        _confluence.MaxLimit = 2;

        var documents = await Source(settings: ("Knowledge:Confluence:PageSize", "3")).ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None);

        Assert.Equal(5, documents.Count);
        Assert.Equal([0, 2, 4], Starts());
    }

    [Fact]
    public async Task The_export_view_becomes_markdown()
    {
        _confluence.AddPage(
            "ENG",
            "Runbook",
            """
            <h2>Setup</h2><p>Install &amp; run <code>make</code>.</p>
            <ul><li>one</li><li>two<ul><li>two-a</li></ul></li></ul>
            <ol><li>first</li><li>second</li></ol>
            <div class="table-wrap"><table class="confluenceTable"><tbody>
            <tr><th class="confluenceTh"><p>Host</p></th><th class="confluenceTh"><p>Role</p></th></tr>
            <tr><td class="confluenceTd">db1</td><td class="confluenceTd">primary</td></tr>
            </tbody></table></div>
            <blockquote><p>Careful.</p></blockquote>
            <pre>  indented
            code</pre>
            """);

        var document = Assert.Single(await Source().ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None));

        Assert.Equal(
            """
            # Runbook

            ## Setup

            Install & run make.

            - one
            - two
              - two-a

            1. first
            2. second

            | Host | Role |
            | --- | --- |
            | db1 | primary |

            > Careful.

            ```
              indented
            code
            ```

            """.Replace("\r\n", "\n"),
            Encoding.UTF8.GetString(document.Content));
    }

    [Fact]
    public async Task A_re_sync_after_one_edit_replaces_exactly_that_page()
    {
        var ids = AddPages("ENG", 7);
        var source = Source(settings: ("Knowledge:Confluence:PageSize", "3"));
        var first = await source.ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None);

        _confluence.EditPage(ids[4], "<p>Body 5, revised</p>");
        var plan = SourceSync.Plan(first.ToDictionary(d => d.ExternalId, d => d.Version), await source.ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None));

        var replaced = Assert.Single(plan.Replace);
        Assert.Equal($"confluence:127.0.0.1:{ids[4]}", replaced.ExternalId);
        Assert.Equal("2", replaced.Version);
        Assert.Equal("# Page 5\n\nBody 5, revised\n", Encoding.UTF8.GetString(replaced.Content));
        Assert.Empty(plan.Add);
        Assert.Empty(plan.Delete);
        Assert.Equal(6, plan.Unchanged.Count);

        _confluence.TrashPage(ids[0]);
        var after = SourceSync.Plan(first.ToDictionary(d => d.ExternalId, d => d.Version), await source.ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None));
        Assert.Equal([$"confluence:127.0.0.1:{ids[0]}"], after.Delete);
    }

    [Fact]
    public async Task An_expired_token_is_access_denied_with_a_message_that_names_confluence_and_not_the_token()
    {
        AddPages("ENG", 2);
        _confluence.ExpireToken(TokenA);

        var error = await Assert.ThrowsAsync<SourceAccessDeniedException>(() => Source().ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None));

        Assert.StartsWith("Confluence rejected the email/API token", error.Message, StringComparison.Ordinal);
        Assert.Equal(SourceKind.Confluence, error.Kind);
        Assert.DoesNotContain(TokenA, error.ToString(), StringComparison.Ordinal);
        Assert.Single(_confluence.Requests); // 401 is not retried
        Assert.DoesNotContain(_logs.Lines, line => line.Contains(TokenA, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_unknown_space_is_not_found()
    {
        var error = await Assert.ThrowsAsync<SourceNotFoundException>(() => Source().ListAsync(_confluence.Url, EmailA, TokenA, "NOPE", CancellationToken.None));

        Assert.Equal("NOPE", error.ResourceId);
        Assert.Contains("NOPE", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_tenant_s_space_is_not_found_with_these_credentials()
    {
        AddPages("OPS", 1);

        await Assert.ThrowsAsync<SourceNotFoundException>(() => Source().ListAsync(_confluence.Url, EmailA, TokenA, "OPS", CancellationToken.None));
    }

    [Fact]
    public async Task Server_errors_are_retried_and_the_read_recovers()
    {
        AddPages("ENG", 5);
        _confluence.Fail("GET", "/wiki/rest/api/content", 503, times: 2);

        var documents = await Source(settings: ("Knowledge:Confluence:PageSize", "2")).ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None);

        Assert.Equal(5, documents.Count);
    }

    [Fact]
    public async Task A_lasting_outage_is_unavailable_and_a_later_read_succeeds()
    {
        AddPages("ENG", 2);
        var source = Source();
        _confluence.Break("GET", "/wiki/rest/api/content", 500);

        var error = await Assert.ThrowsAsync<SourceUnavailableException>(() => source.ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None));
        Assert.Contains("Confluence is unavailable (HTTP 500)", error.Message, StringComparison.Ordinal);

        _confluence.Heal();
        Assert.Equal(2, (await source.ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Every_request_carries_its_own_tenant_s_credentials()
    {
        AddPages("ENG", 4);
        AddPages("OPS", 3);
        var source = Source(settings: ("Knowledge:Confluence:PageSize", "2"));

        var results = await Task.WhenAll(
            source.ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None),
            source.ListAsync(_confluence.Url, EmailB, TokenB, "OPS", CancellationToken.None));

        Assert.Equal(4, results[0].Count);
        Assert.Equal(3, results[1].Count);
        foreach (var request in _confluence.Requests)
        {
            var space = request.Path.StartsWith("/wiki/rest/api/space/", StringComparison.Ordinal) ? request.Path.Split('/')[^1] : request.Query!["spaceKey"].Single();
            var credentials = ConfluenceFake.Credentials(request.Headers!["Authorization"].Single());
            Assert.Equal(space == "ENG" ? (EmailA, TokenA) : (EmailB, TokenB), credentials);
            Assert.False(request.Headers.ContainsKey("Cookie"), "a cookie set for one tenant's call must not travel with another's");
        }

        Assert.DoesNotContain(_logs.Lines, line => line.Contains(TokenA, StringComparison.Ordinal) || line.Contains(TokenB, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_plain_http_site_is_refused_unless_loopback_testing_is_allowed()
    {
        var error = await Assert.ThrowsAsync<SourceRejectedException>(() => Source(allowLoopback: false).ListAsync(_confluence.Url, EmailA, TokenA, "ENG", CancellationToken.None));

        Assert.Contains("https", error.Message, StringComparison.Ordinal);
        Assert.Empty(_confluence.Requests);
    }

    [Theory]
    [InlineData("https://10.0.0.1/")]
    [InlineData("https://169.254.169.254/")]
    [InlineData("https://[fd00::1]/")]
    [InlineData("https://intranet.acme.test/")]
    public async Task A_site_on_an_internal_address_is_refused_before_any_connection(string site)
    {
        var resolver = new ScriptedResolver().Answer("intranet.acme.test", ["192.168.10.5"]);

        var error = await Assert.ThrowsAsync<SourceRejectedException>(() => Source(resolver: resolver).ListAsync(new Uri(site), EmailA, TokenA, "ENG", CancellationToken.None));

        Assert.Contains("only public internet addresses", error.Message, StringComparison.Ordinal);
    }
}
