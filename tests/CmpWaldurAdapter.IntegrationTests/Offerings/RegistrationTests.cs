using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Contracts;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Offerings;

/// <summary><c>offerings register</c> against a WireMock Waldur: creates, then changes nothing, then only what changed.</summary>
public sealed class RegistrationTests : IAsyncLifetime
{
    private readonly WaldurFake _waldur = new();
    private readonly string _catalogue = Path.Combine(Path.GetTempPath(), "cmp-catalogue-" + Guid.NewGuid().ToString("N"));
    private TestDatabase _database = null!;
    private Dictionary<string, string?> _settings = null!;

    public async Task InitializeAsync()
    {
        // The repository's catalogue files; flow templates are not what registration is about.
        Directory.CreateDirectory(Path.Combine(_catalogue, "flows"));
        foreach (var file in Directory.GetFiles(UpstreamSpecs.PathOf("catalogue"), "*.yaml"))
        {
            File.Copy(file, Path.Combine(_catalogue, Path.GetFileName(file)));
            var slug = Path.GetFileNameWithoutExtension(file);
            await File.WriteAllTextAsync(Path.Combine(_catalogue, "flows", slug + ".json"), "{}");
            await File.WriteAllTextAsync(Path.Combine(_catalogue, "flows", slug + ".demo.json"), "{}");
        }

        _database = await TestDatabase.CreateMigratedAsync(DatabaseProvider.Sqlite);
        _settings = AdapterTestHost.Settings(_waldur, _database);
        _settings["Catalogue:Directory"] = _catalogue;
        _settings["Registration:ServiceProviderCustomerUuid"] = _waldur.ProviderCustomerUuid.ToString();
        _settings["Web:PublicBaseUrl"] = "https://agents.example.org/";
    }

    public async Task DisposeAsync()
    {
        try
        {
            _waldur.AssertRequestsConformToSpec();
        }
        finally
        {
            _waldur.Dispose();
            await _database.DisposeAsync();
            Directory.Delete(_catalogue, recursive: true);
        }
    }

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exit = await AdapterCli.RunAsync(args, new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(_settings);
            builder.Services.AddSingleton<ILogEventSink>(new CapturedLogs());
        }));
        return (exit, output.ToString(), error.ToString());
    }

    private int Writes => _waldur.Requests.Count(r => r.Method != "GET");

    [Fact]
    public async Task The_first_run_creates_everything_and_the_second_changes_nothing()
    {
        var first = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, first.Exit);
        Assert.Contains("Waldur now matches the catalogue.", first.Output);
        var offerings = _waldur.RegisteredOfferings;
        Assert.Equal(5, offerings.Count);
        Assert.Equal(["Agents", "Assistants", "Automations"], _waldur.Categories.Select(c => c["title"]!.GetValue<string>()).Order());

        var support = offerings.Single(o => o["backend_id"]!.GetValue<string>() == "customer-support-agent");
        Assert.Equal("Customer Support Agent", support["name"]!.GetValue<string>());
        Assert.Equal("Marketplace.Slurm", support["type"]!.GetValue<string>());
        Assert.Equal("Active", support["state"]!.GetValue<string>());
        Assert.Equal("Agents", support["category_title"]!.GetValue<string>());
        Assert.Contains("https://agents.example.org/try/customer-support-agent", support["full_description"]!.GetValue<string>());
        Assert.Equal(["chat_credits", "rag_credits"], support["components"]!.AsArray().Select(c => c!["type"]!.GetValue<string>()));
        Assert.All(support["components"]!.AsArray(), c => Assert.Equal("usage", c!["billing_type"]!.GetValue<string>()));
        var form = support["options"]!["options"]!;
        Assert.Equal("integer", form["escalate_after"]!["type"]!.GetValue<string>());
        Assert.Equal(20, form["escalate_after"]!["max"]!.GetValue<int>());
        Assert.Equal(["friendly", "professional", "concise"], form["tone"]!["choices"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.True(support["resource_options"]!["options"]!.AsObject().ContainsKey("tone"));
        Assert.True(support["plugin_options"]!["create_orders_on_resource_option_change"]!.GetValue<bool>());
        var plan = support["plans"]!.AsArray().Single()!;
        Assert.Equal(0.01, plan["prices"]!["chat_credits"]!.GetValue<double>());
        Assert.Contains("\"Slug\": \"customer-support-agent\"", first.Output);

        var writesAfterFirst = Writes;
        var second = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, second.Exit);
        Assert.Contains("Nothing to change: Waldur already matches the catalogue.", second.Output);
        Assert.Equal(writesAfterFirst, Writes);
    }

    [Fact]
    public async Task Offerings_that_fill_the_last_page_exactly_are_all_found_again()
    {
        var first = await RunAsync("offerings", "register", "--all");
        // Waldur answers a page past the last with 404: listing the offerings must stop on the full last page.
        _settings["Waldur:PageSize"] = _waldur.RegisteredOfferings.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var writesAfterFirst = Writes;

        var second = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, first.Exit);
        Assert.Equal(ExitCodes.Success, second.Exit);
        Assert.Contains("Nothing to change: Waldur already matches the catalogue.", second.Output);
        Assert.Equal(writesAfterFirst, Writes);
    }

    [Fact]
    public async Task A_category_past_the_first_page_of_titles_containing_its_own_is_reused()
    {
        // Waldur's title filter matches every title containing "Agents", in pages: the operator's ten "… Agents" categories
        // and one more fill more than the first (Waldur's default page of 10, and two of the adapter's pages of 5).
        _settings["Waldur:PageSize"] = "5";
        for (var i = 1; i <= 11; i++)
        {
            _waldur.AddCategory($"Research Agents {i}");
        }

        var agents = _waldur.AddCategory("Agents");
        _waldur.AddCategory("Assistants");
        _waldur.AddCategory("Automations");

        var run = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, run.Exit);
        Assert.Equal(0, _waldur.Count("POST", "/api/marketplace-categories/"));
        Assert.Equal(14, _waldur.Categories.Count);
        Assert.Contains(_waldur.RegisteredOfferings, o => o["category_uuid"]!.GetValue<string>() == agents.ToString());
        Assert.All(_waldur.RegisteredOfferings.Where(o => o["category_title"]!.GetValue<string>() == "Agents"),
            o => Assert.Equal(agents.ToString(), o["category_uuid"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_plan_past_the_first_page_of_the_offerings_plans_is_found_again()
    {
        var first = await RunAsync("offerings", "register", "--all");
        // Retired plans listed before the current one fill more than the first page (Waldur's default of 10, and two of
        // the adapter's pages of 5).
        var support = _waldur.RegisteredOfferings.Single(o => o["backend_id"]!.GetValue<string>() == "customer-support-agent");
        _waldur.AddRetiredPlansBefore(Guid.Parse(support["uuid"]!.GetValue<string>()), 11);
        _settings["Waldur:PageSize"] = "5";
        var writesAfterFirst = Writes;

        var second = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, first.Exit);
        Assert.Equal(ExitCodes.Success, second.Exit);
        Assert.Contains("Nothing to change: Waldur already matches the catalogue.", second.Output);
        Assert.Equal(writesAfterFirst, Writes);
    }

    [Theory]
    [InlineData("/api/marketplace-categories/")]
    [InlineData("/api/marketplace-provider-offerings/")]
    [InlineData("/api/marketplace-plans/")]
    public async Task A_create_whose_answer_is_lost_is_sent_once_and_the_next_run_finds_what_it_made(string create)
    {
        // Waldur made it, but a proxy answered 502: sending it again would make a twin.
        _waldur.LoseAnswer("POST", create);

        var first = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Error, first.Exit);
        Assert.Equal(1, _waldur.Count("POST", create));

        var second = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Success, second.Exit);
        var offerings = _waldur.RegisteredOfferings;
        Assert.Equal(5, offerings.Select(o => o["backend_id"]!.GetValue<string>()).Distinct().Count());
        Assert.Equal(5, offerings.Count);
        Assert.Equal(3, _waldur.Categories.Count);
        Assert.All(offerings, o => Assert.NotEmpty(o["plans"]!.AsArray().Single()!["prices"]!.AsObject()));
    }

    [Fact]
    public async Task A_changed_price_updates_only_the_plan_prices()
    {
        await RunAsync("offerings", "register", "--all");
        var file = Path.Combine(_catalogue, "code-assistant.yaml");
        await File.WriteAllTextAsync(file, (await File.ReadAllTextAsync(file)).Replace("chat_credits: \"0.01\"", "chat_credits: \"0.02\"", StringComparison.Ordinal));
        var before = Writes;

        var (exit, output, _) = await RunAsync("offerings", "register", "--file", file, "--output", "json");

        Assert.Equal(ExitCodes.Success, exit);
        var result = JsonNode.Parse(output)!["offerings"]!.AsArray().Single()!;
        Assert.Equal(["update prices"], result["changes"]!.AsArray().Select(c => c!.GetValue<string>()));
        Assert.Equal(before + 1, Writes);
        var code = _waldur.RegisteredOfferings.Single(o => o["backend_id"]!.GetValue<string>() == "code-assistant");
        Assert.Equal(0.02, code["plans"]![0]!["prices"]!["chat_credits"]!.GetValue<double>());
    }

    [Fact]
    public async Task A_changed_form_and_description_are_updated_in_place()
    {
        await RunAsync("offerings", "register", "--all");
        var file = Path.Combine(_catalogue, "topic-assistant.yaml");
        var yaml = (await File.ReadAllTextAsync(file))
            .Replace("choices: [friendly, expert, playful, formal]", "choices: [friendly, expert, playful, formal, witty]", StringComparison.Ordinal)
            .Replace("name: Topic Assistant\n", "name: Topic Expert\n", StringComparison.Ordinal);
        await File.WriteAllTextAsync(file, yaml);

        var (exit, output, _) = await RunAsync("offerings", "register", "--file", file);

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains("update name and description; update order form; update editable options", output);
        var topic = _waldur.RegisteredOfferings.Single(o => o["backend_id"]!.GetValue<string>() == "topic-assistant");
        Assert.Equal("Topic Expert", topic["name"]!.GetValue<string>());
        Assert.Contains("witty", topic["options"]!["options"]!["personality"]!["choices"]!.ToJsonString());
        Assert.Equal(5, _waldur.RegisteredOfferings.Count);
    }

    [Fact]
    public async Task A_dry_run_reports_and_changes_nothing()
    {
        var (exit, output, _) = await RunAsync("offerings", "register", "--all", "--dry-run");

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains("Dry run: nothing was changed in Waldur.", output);
        Assert.Contains("create category Agents", output);
        Assert.Contains("create offering", output);
        Assert.Equal(0, Writes);
        Assert.Empty(_waldur.RegisteredOfferings);
    }

    [Fact]
    public async Task A_malformed_catalogue_file_is_refused_before_anything_is_sent()
    {
        var file = Path.Combine(_catalogue, "broken.yaml");
        await File.WriteAllTextAsync(file, "slug: broken\nname: Broken\ncategory: Robots\n");

        var (exit, _, error) = await RunAsync("offerings", "register", "--file", file);

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("broken.yaml:3: category: 'Robots' is not one of", error);
        Assert.Contains("description: is required", error);
        Assert.Equal(0, Writes);
    }

    [Fact]
    public async Task Arguments_must_name_a_file_or_all()
    {
        var (exit, _, error) = await RunAsync("offerings", "register");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("Choose exactly one of --file FILE or --all.", error);
    }

    [Fact]
    public async Task An_organization_that_is_not_a_service_provider_is_a_clear_error()
    {
        _settings["Registration:ServiceProviderCustomerUuid"] = Guid.NewGuid().ToString();

        var (exit, _, error) = await RunAsync("offerings", "register", "--all");

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("is not a service provider", error);
    }
}
