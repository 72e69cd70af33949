using System.Diagnostics;
using System.Text;
using CmpWaldurAdapter.Knowledge.Sources;
using CmpWaldurAdapter.Testing.Fakes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using static CmpWaldurAdapter.Testing.Fakes.NotionFake;

namespace CmpWaldurAdapter.IntegrationTests.Knowledge.Sources;

public sealed class NotionSourceTests : IDisposable
{
    private const string TokenA = "secret_tenantA_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    private const string TokenB = "secret_tenantB_9876543210zyxwvutsrqponmlkjihgfedcbaGFEDCBA";

    private readonly NotionFake _notion = new();
    private readonly TestLogs _logs = new();

    public NotionSourceTests()
    {
        _notion.AddWorkspace(TokenA);
        _notion.AddWorkspace(TokenB);
    }

    public void Dispose() => _notion.Dispose();

    private NotionSource Source(params (string Key, string Value)[] settings)
    {
        var values = new Dictionary<string, string?> { ["Knowledge:Notion:BaseUrl"] = _notion.Url.ToString() };
        foreach (var (key, value) in settings)
        {
            values[key] = value;
        }

        return SourcesHost.Build(values, _logs).GetRequiredService<NotionSource>();
    }

    private string DatabaseWithPages(string token, int count)
    {
        var database = _notion.AddDatabase(token);
        for (var i = 1; i <= count; i++)
        {
            _notion.AddPage(token, $"Page {i}", database, Paragraph($"Body of page {i}."));
        }

        return database;
    }

    [Fact]
    public async Task A_database_is_read_page_by_page_until_has_more_is_false()
    {
        var database = DatabaseWithPages(TokenA, 5);

        var documents = await Source(("Knowledge:Notion:PageSize", "2")).ListAsync(TokenA, [database], CancellationToken.None);

        Assert.Equal(["Page 1", "Page 2", "Page 3", "Page 4", "Page 5"], documents.Select(d => d.Title));
        Assert.Equal(3, _notion.Count("POST", $"/v1/databases/{database}/query"));
        var cursors = _notion.Requests.Where(r => r.Method == "POST").Select(r => System.Text.Json.Nodes.JsonNode.Parse(r.Body!)!["start_cursor"]?.GetValue<string>()).ToList();
        Assert.Null(cursors[0]);
        Assert.All(cursors.Skip(1), c => Assert.NotNull(c));

        var third = documents[2];
        Assert.Equal("# Page 3\n\nBody of page 3.\n", Encoding.UTF8.GetString(third.Content));
        Assert.Equal("text/markdown", third.ContentType);
        Assert.StartsWith("notion:", third.ExternalId, StringComparison.Ordinal);
        Assert.Matches("^page-3-[0-9a-f]{8}\\.md$", third.FileName);
        Assert.Equal(_notion.LastEdited(third.ExternalId["notion:".Length..]), third.Version);
        Assert.NotNull(third.UpdatedAt);
        Assert.StartsWith("https://www.notion.so/", third.SourceUrl!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nested_blocks_become_markdown_following_has_children_across_pages_of_children()
    {
        _notion.BlockPageLimit = 3; // Notion may answer fewer than page_size: forces start_cursor on children too
        var page = _notion.AddPage(
            TokenA,
            "Handbook",
            null,
            Heading(1, "Onboarding"),
            Paragraph(Text("Welcome to "), Text("Acme", bold: true), Text(". See "), Text("the handbook", link: "https://acme.example/handbook"), Text(".")),
            Bullet("First day", Bullet("Laptop"), Bullet("Badge", Bullet("Photo"))),
            Bullet("Second day"),
            Numbered("Read the wiki"),
            Numbered("Meet the team", Paragraph("Ask for a buddy.")),
            ToDo("Sign the contract", true),
            ToDo("Set up VPN", false),
            Toggle("Details", Paragraph("Hidden text")),
            Heading(2, "Rules"),
            Quote("Be kind."),
            Callout("💡", "Ask questions."),
            Code("python", "print('hi')\nprint('bye')"),
            Divider(),
            Table(["Name", "Role"], ["Ann", "Lead"], ["Bo", "Dev | QA"]),
            Heading(3, "More"),
            ChildPage("Benefits"));

        var documents = await Source().ListAsync(TokenA, ["page:" + page], CancellationToken.None);

        var expected = """
            # Handbook

            # Onboarding

            Welcome to **Acme**. See [the handbook](https://acme.example/handbook).

            - First day
              - Laptop
              - Badge
                - Photo
            - Second day
            1. Read the wiki
            2. Meet the team

               Ask for a buddy.

            - [x] Sign the contract
            - [ ] Set up VPN
            - Details

              Hidden text

            ## Rules

            > Be kind.

            > 💡 Ask questions.

            ```python
            print('hi')
            print('bye')
            ```

            ---

            | Name | Role |
            | --- | --- |
            | Ann | Lead |
            | Bo | Dev \| QA |

            ### More

            Sub-page: Benefits

            """;
        Assert.Equal(expected.Replace("\r\n", "\n"), Encoding.UTF8.GetString(Assert.Single(documents).Content));
        Assert.True(_notion.Count("GET", $"/v1/blocks/{page}/children") >= 6, "the page's 17 blocks come 3 at a time");
        Assert.Equal(0, _notion.Count("POST", ".*"));
    }

    [Fact]
    public async Task A_bare_id_is_tried_as_a_database_then_read_as_a_page()
    {
        var database = DatabaseWithPages(TokenA, 2);
        var page = _notion.AddPage(TokenA, "Standalone", null, Paragraph("Alone."));

        var documents = await Source().ListAsync(TokenA, [database, page.Replace("-", string.Empty), "https://www.notion.so/acme/Standalone-" + page.Replace("-", string.Empty)], CancellationToken.None);

        Assert.Equal(["Page 1", "Page 2", "Standalone"], documents.Select(d => d.Title)); // the page, named twice, once
        Assert.Equal(2, _notion.Count("POST", $"/v1/databases/{page}/query"));
        Assert.Equal(2, _notion.Count("GET", $"/v1/pages/{page}"));
        Assert.Equal(0, _notion.Count("GET", $"/v1/pages/{database}"));
    }

    [Fact]
    public async Task A_re_sync_after_one_edit_replaces_exactly_that_page()
    {
        var database = DatabaseWithPages(TokenA, 5);
        var source = Source(("Knowledge:Notion:PageSize", "2"));
        var first = await source.ListAsync(TokenA, [database], CancellationToken.None);
        var stored = first.ToDictionary(d => d.ExternalId, d => d.Version);

        var edited = first[3].ExternalId["notion:".Length..];
        _notion.EditPage(edited, null, Paragraph("Rewritten."));
        var second = await source.ListAsync(TokenA, [database], CancellationToken.None);
        var plan = SourceSync.Plan(stored, second);

        var replaced = Assert.Single(plan.Replace);
        Assert.Equal("notion:" + edited, replaced.ExternalId);
        Assert.Equal("# Page 4\n\nRewritten.\n", Encoding.UTF8.GetString(replaced.Content));
        Assert.Empty(plan.Add);
        Assert.Empty(plan.Delete);
        Assert.Equal(4, plan.Unchanged.Count);

        _notion.TrashPage(first[0].ExternalId["notion:".Length..]);
        _notion.AddPage(TokenA, "Page 6", database, Paragraph("New."));
        var third = SourceSync.Plan(second.ToDictionary(d => d.ExternalId, d => d.Version), await source.ListAsync(TokenA, [database], CancellationToken.None));
        Assert.Equal(["Page 6"], third.Add.Select(d => d.Title));
        Assert.Equal([first[0].ExternalId], third.Delete);
        Assert.Empty(third.Replace);
    }

    [Fact]
    public async Task An_expired_token_is_access_denied_with_a_message_that_names_notion_and_not_the_token()
    {
        var database = DatabaseWithPages(TokenA, 2);
        _notion.ExpireToken(TokenA);

        var error = await Assert.ThrowsAsync<SourceAccessDeniedException>(() => Source().ListAsync(TokenA, [database], CancellationToken.None));

        Assert.Equal("Notion rejected the integration token (expired or revoked): reconnect Notion.", error.Message);
        Assert.Equal(SourceKind.Notion, error.Kind);
        Assert.False(error.IsTransient);
        Assert.DoesNotContain(TokenA, error.ToString(), StringComparison.Ordinal);
        Assert.Single(_notion.Requests); // 401 is not retried
        Assert.DoesNotContain(_logs.Lines, line => line.Contains(TokenA, StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_unknown_id_is_not_found_and_named()
    {
        var missing = Guid.NewGuid().ToString();

        var error = await Assert.ThrowsAsync<SourceNotFoundException>(() => Source().ListAsync(TokenA, [missing], CancellationToken.None));

        Assert.Equal(missing, error.ResourceId);
        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Another_workspace_s_page_is_not_found_with_this_token()
    {
        var page = _notion.AddPage(TokenB, "Private to B", null, Paragraph("B only."));

        await Assert.ThrowsAsync<SourceNotFoundException>(() => Source().ListAsync(TokenA, ["page:" + page], CancellationToken.None));
    }

    [Fact]
    public async Task Something_that_is_no_notion_id_is_rejected_before_any_request()
    {
        await Assert.ThrowsAsync<SourceRejectedException>(() => Source().ListAsync(TokenA, ["../../v1/users"], CancellationToken.None));

        Assert.Empty(_notion.Requests);
    }

    [Fact]
    public async Task Server_errors_are_retried_and_the_read_recovers()
    {
        var database = DatabaseWithPages(TokenA, 3);
        _notion.Fail("POST", "/v1/databases/.*/query", 502, times: 2);
        _notion.Fail("GET", "/v1/blocks/.*/children", 503, times: 1);

        var documents = await Source().ListAsync(TokenA, [database], CancellationToken.None);

        Assert.Equal(3, documents.Count);
        Assert.Equal(3, _notion.Count("POST", "/v1/databases/.*/query"));
    }

    [Fact]
    public async Task A_lasting_outage_is_unavailable_and_a_later_read_succeeds()
    {
        var database = DatabaseWithPages(TokenA, 2);
        var source = Source();
        _notion.Break("POST", "/v1/databases/.*/query", 503);

        var error = await Assert.ThrowsAsync<SourceUnavailableException>(() => source.ListAsync(TokenA, [database], CancellationToken.None));
        Assert.Contains("Notion", error.Message, StringComparison.Ordinal);
        Assert.True(error.IsTransient);

        _notion.Heal();
        Assert.Equal(2, (await source.ListAsync(TokenA, [database], CancellationToken.None)).Count);
    }

    [Fact]
    public async Task Rate_limiting_is_waited_out_as_retry_after_says()
    {
        var database = DatabaseWithPages(TokenA, 1);
        _notion.RateLimit(times: 1, retryAfterSeconds: 1);
        var clock = Stopwatch.StartNew();

        var documents = await Source().ListAsync(TokenA, [database], CancellationToken.None);

        Assert.Single(documents);
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(900), $"waited {clock.Elapsed}, Retry-After said 1 s");
    }

    [Fact]
    public async Task Rate_limiting_that_outlasts_the_retries_is_unavailable()
    {
        var database = DatabaseWithPages(TokenA, 1);
        _notion.RateLimit(times: 10, retryAfterSeconds: 0);

        var error = await Assert.ThrowsAsync<SourceUnavailableException>(() => Source().ListAsync(TokenA, [database], CancellationToken.None));

        Assert.Contains("rate limiting", error.Message, StringComparison.Ordinal);
        Assert.Equal(3, _notion.Requests.Count());
    }

    [Fact]
    public async Task Every_request_carries_its_own_tenant_s_token_and_the_notion_version()
    {
        var databaseA = DatabaseWithPages(TokenA, 3);
        var pageB = _notion.AddPage(TokenB, "B's page", null, Bullet("B item", Paragraph("nested")));
        var source = Source(("Knowledge:Notion:PageSize", "1"));

        var results = await Task.WhenAll(
            source.ListAsync(TokenA, [databaseA], CancellationToken.None),
            source.ListAsync(TokenB, [pageB], CancellationToken.None),
            source.ListAsync(TokenA, [databaseA], CancellationToken.None));

        Assert.Equal(3, results[0].Count);
        Assert.Equal("B's page", Assert.Single(results[1]).Title);
        Assert.True(_notion.Requests.Count() > 10);
        foreach (var request in _notion.Requests)
        {
            var id = request.Path.Split('/')[3];
            Assert.Equal("Bearer " + _notion.OwnerToken(id), request.Headers!["Authorization"].Single());
            Assert.Equal("2022-06-28", request.Headers["Notion-Version"].Single());
            Assert.False(request.Headers.ContainsKey("Cookie"), "a cookie set for one tenant's call must not travel with another's");
        }

        var before = _notion.Requests.Count();
        await source.ListAsync(TokenB, [pageB], CancellationToken.None);
        Assert.All(_notion.Requests.Skip(before), r => Assert.Equal("Bearer " + TokenB, r.Headers!["Authorization"].Single()));
        Assert.DoesNotContain(_logs.Lines, line => line.Contains(TokenA, StringComparison.Ordinal) || line.Contains(TokenB, StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_defaults_compose_and_work()
    {
        var database = DatabaseWithPages(TokenA, 2);
        var services = new ServiceCollection();
        services.AddLogging();
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(new Dictionary<string, string?> { ["Knowledge:Notion:BaseUrl"] = _notion.Url.ToString().TrimEnd('/') })
            .Build();
        services.AddKnowledgeSources(configuration);
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });

        var documents = await provider.GetRequiredService<NotionSource>().ListAsync(TokenA, [database], CancellationToken.None);

        Assert.Equal(2, documents.Count);
        Assert.NotNull(provider.GetRequiredService<SafeUrlFetcher>());
        Assert.NotNull(provider.GetRequiredService<ConfluenceSource>());
    }
}
