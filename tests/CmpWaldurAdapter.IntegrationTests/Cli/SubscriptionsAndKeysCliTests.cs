using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Cli;

/// <summary><c>subscriptions list|show</c> and <c>keys list|create|revoke</c>, run in-process as operators run them.</summary>
public sealed class SubscriptionsAndKeysCliTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var context = new CommandContext(output, error, builder =>
        {
            builder.Configuration.AddInMemoryCollection(_bed.Settings);
            builder.Services.AddSingleton<ILogEventSink>(_bed.Logs);
        });
        var exit = await AdapterCli.RunAsync(args, context);
        return (exit, output.ToString(), error.ToString());
    }

    [Theory]
    [InlineData("subscriptions", "list")]
    [InlineData("subscriptions", "show")]
    [InlineData("subscriptions", "replace-console-link")]
    [InlineData("keys", "list")]
    [InlineData("keys", "create")]
    [InlineData("keys", "revoke")]
    [InlineData("reconcile")]
    public async Task Every_command_explains_itself(params string[] command)
    {
        var (exit, output, _) = await RunAsync([.. command, "--help"]);

        Assert.Equal(ExitCodes.Success, exit);
        Assert.Contains("Usage:", output);
        Assert.Contains(string.Join(' ', command), output);
    }

    [Fact]
    public async Task List_filters_by_state_and_customer_and_show_finds_a_subscription_by_resource_uuid()
    {
        var active = await _bed.AddSubscriptionAsync();
        var terminated = await _bed.AddSubscriptionAsync(state: SubscriptionState.Terminated);

        var all = await RunAsync("subscriptions", "list", "--output", "json");
        var activeOnly = await RunAsync("subscriptions", "list", "--state", "Active", "--output", "json");
        var ofCustomer = await RunAsync("subscriptions", "list", "--customer", terminated.CustomerId.ToString());
        var shown = await RunAsync("subscriptions", "show", active.ResourceUuid.ToString(), "--output", "json");

        Assert.Equal(ExitCodes.Success, all.Exit);
        Assert.Equal(2, JsonNode.Parse(all.Output)!.AsArray().Count);
        Assert.Equal(active.Id.ToString(), Assert.Single(JsonNode.Parse(activeOnly.Output)!.AsArray())!["id"]!.GetValue<string>());
        Assert.Contains(terminated.Id.ToString(), ofCustomer.Output);
        Assert.DoesNotContain(active.Id.ToString(), ofCustomer.Output);
        Assert.Equal(ExitCodes.Success, shown.Exit);
        var detail = JsonNode.Parse(shown.Output)!;
        Assert.Equal((active.Id.ToString(), "Active"), (detail["id"]!.GetValue<string>(), detail["state"]!.GetValue<string>()));
        Assert.Empty(detail["keys"]!.AsArray());
    }

    [Fact]
    public async Task Replace_console_link_puts_a_new_link_in_the_report_and_ends_the_old_one_and_changes_nothing_when_it_cannot()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        _bed.Waldur.AddResource(subscription.ResourceUuid, _bed.Offering, subscription.CustomerId, subscription.WorkspaceId);
        var store = _bed.Services.GetRequiredService<BuyerWebStore>();
        var access = _bed.Services.GetRequiredService<ConsoleAccess>();
        var old = await access.CreateLinkAsync(subscription.Id, CancellationToken.None);

        _bed.Waldur.Upstream.Fail("POST", $"/api/marketplace-provider-resources/{subscription.ResourceUuid}/submit_report/", 400);
        var refused = await RunAsync("subscriptions", "replace-console-link", subscription.Id.ToString());
        Assert.Equal(ExitCodes.Error, refused.Exit);
        Assert.Contains("nothing was replaced: HomePort could not be reached (Waldur: HTTP 400", refused.Error);
        Assert.Equal(1, (await store.GetAsync(subscription.Id, CancellationToken.None)).ConsoleLinkVersion);

        var replaced = await RunAsync("subscriptions", "replace-console-link", subscription.ResourceUuid.ToString(), "--output", "json");

        Assert.Equal(ExitCodes.Success, replaced.Exit);
        Assert.Equal(2, JsonNode.Parse(replaced.Output)!["linkVersion"]!.GetValue<int>());
        var report = _bed.Waldur.Resource(subscription.ResourceUuid)["report"]!.AsArray();
        var reported = CmpWaldurAdapter.Testing.Web.ConsoleBrowser.LinkIn(report.Single(s => s!["header"]!.GetValue<string>() == ConsoleReportContributor.Header)!["body"]!.GetValue<string>());
        Assert.Equal(2, (await store.GetAsync(subscription.Id, CancellationToken.None)).ConsoleLinkVersion);
        Assert.Equal("/console/open", reported.AbsolutePath);
        Assert.Null(await OpensAsync(access, old)); // earlier links stop
        Assert.Equal(subscription.Id, (await OpensAsync(access, reported))?.Subscription.Id); // the server takes what the CLI made
        Assert.DoesNotContain(_bed.Logs.Events, e => e.RenderMessage().Contains("console/open?t=", StringComparison.Ordinal) && !e.RenderMessage().Contains("t=***", StringComparison.Ordinal));

        var terminated = await _bed.AddSubscriptionAsync(state: SubscriptionState.Terminated);
        var notActive = await RunAsync("subscriptions", "replace-console-link", terminated.Id.ToString());
        Assert.Equal(ExitCodes.Error, notActive.Exit);
        Assert.Contains("only an active subscription has a console link", notActive.Error);
        var unknown = await RunAsync("subscriptions", "replace-console-link", Guid.NewGuid().ToString());
        Assert.Equal(ExitCodes.Error, unknown.Exit);
        Assert.Contains("no subscription has the id or resource UUID", unknown.Error);
    }

    /// <summary>Reads the link as the console's /console/open does: the caller, or null for a link it refuses.</summary>
    private static Task<ConsoleCaller?> OpensAsync(ConsoleAccess access, Uri link) =>
        access.ReadLinkAsync(Microsoft.AspNetCore.WebUtilities.QueryHelpers.ParseQuery(link.Query)["t"].ToString(), CancellationToken.None);

    [Fact]
    public async Task Bad_arguments_are_clear_errors_with_exit_2()
    {
        var unknown = await RunAsync("subscriptions", "show", Guid.NewGuid().ToString());
        var notAGuid = await RunAsync("subscriptions", "show", "nope");
        var badState = await RunAsync("subscriptions", "list", "--state", "Sleeping");
        var noSubscription = await RunAsync("keys", "list");
        var unknownOffering = await RunAsync("subscriptions", "list", "--offering", "no-such-offering");

        Assert.Equal(ExitCodes.Error, unknown.Exit);
        Assert.Contains("no subscription has the id or resource UUID", unknown.Error);
        Assert.Equal(ExitCodes.Error, notAGuid.Exit);
        Assert.Equal(ExitCodes.Error, badState.Exit);
        Assert.Equal(ExitCodes.Error, noSubscription.Exit);
        Assert.Contains("--subscription", noSubscription.Error);
        Assert.Equal(ExitCodes.Error, unknownOffering.Exit);
        Assert.Contains("no-such-offering", unknownOffering.Error);
    }

    [Fact]
    public async Task A_created_key_is_shown_once_works_is_listed_by_prefix_and_stops_working_when_revoked()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();

        var created = await RunAsync("keys", "create", "--subscription", subscription.Id.ToString(), "--name", "backend", "--output", "json");

        Assert.Equal(ExitCodes.Success, created.Exit);
        var key = JsonNode.Parse(created.Output)!;
        var plaintext = key["key"]!.GetValue<string>();
        var keyId = key["id"]!.GetValue<string>();
        Assert.StartsWith("sk_live_", plaintext);
        Assert.Equal(subscription.Id, (await keys.AuthenticateAsync(plaintext, CancellationToken.None))!.Subscription.Id);

        var listed = await RunAsync("keys", "list", "--subscription", subscription.ResourceUuid.ToString());
        Assert.Contains(keyId, listed.Output);
        Assert.Contains("backend", listed.Output);
        Assert.DoesNotContain(plaintext, listed.Output);

        var revoked = await RunAsync("keys", "revoke", "--subscription", subscription.Id.ToString(), keyId);
        var again = await RunAsync("keys", "revoke", "--subscription", subscription.Id.ToString(), keyId);

        Assert.Equal(ExitCodes.Success, revoked.Exit);
        Assert.Null(await keys.AuthenticateAsync(plaintext, CancellationToken.None));
        Assert.Equal(ExitCodes.Error, again.Exit);
        Assert.Contains("has no live key", again.Error);
        Assert.Contains("no live API keys", (await RunAsync("keys", "list", "--subscription", subscription.Id.ToString())).Output);
    }

    [Fact]
    public async Task A_terminated_subscription_gets_no_new_key()
    {
        var subscription = await _bed.AddSubscriptionAsync(state: SubscriptionState.Terminated);

        var (exit, _, error) = await RunAsync("keys", "create", "--subscription", subscription.Id.ToString());

        Assert.Equal(ExitCodes.Error, exit);
        Assert.Contains("Terminated", error);
    }
}
