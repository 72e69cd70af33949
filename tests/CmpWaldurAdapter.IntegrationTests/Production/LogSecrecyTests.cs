using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Production;

/// <summary>
/// Keys, tokens and passwords never reach a log line, even with every logger at its most verbose, through
/// key creation and reveal, tenant provisioning and failing upstreams. The upstream clients write no
/// per-request log lines at all (their calls are metered instead), so their headers cannot leak that way.
/// </summary>
public sealed partial class LogSecrecyTests : IAsyncLifetime
{
    private TenantTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await TenantTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task No_secret_created_or_configured_appears_in_any_log_line()
    {
        _bed.Settings["Serilog:MinimumLevel:Default"] = "Verbose";
        _bed.Settings["Serilog:MinimumLevel:Override:Microsoft"] = "Verbose";
        _bed.Settings["Serilog:MinimumLevel:Override:System"] = "Verbose";
        var server = await _bed.StartServerAsync();

        // Provisioning with failures on the calls that carry passwords and keys: login, user creation, key minting.
        _bed.Langflow.Fail("POST", "/api/v1/users/", 503, times: 1);
        _bed.Langflow.Fail("POST", "/api/v1/login", 500, times: 1);
        _bed.Langflow.Fail("POST", "/api/v1/api_key/", 502, times: 1);
        _bed.Ragflow.Fail("POST", "/api/v1/datasets", 503, times: 1);
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/set_state_done/", 503, times: 1);
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes());
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(30), "the order settles");
        var resource = _bed.Waldur.ResourceOf(order);

        // The one-time link and the key it reveals; then keys created and regenerated over the API.
        using var anonymous = server.CreateClient();
        var report = _bed.Waldur.Resource(resource)["report"]!.ToJsonString();
        var link = new Uri(RevealLink().Match(report).Value);
        TestSecrets.Register(link.Segments[^1], "key reveal token");
        var key = TestSecrets.Register(KeyPattern().Match(await KeyRevealLinks.ShowAsync(link.ToString(), server.Url)).Value, "subscription secret key");
        Assert.StartsWith("sk_live_", key);
        using var client = Authorized(server, key);
        var created = JsonNode.Parse(await (await client.PostAsJsonAsync("/v1/keys", new { name = "CI" })).Content.ReadAsStringAsync())!;
        TestSecrets.Register(created["key"]!.GetValue<string>(), "created key");
        var regenerated = JsonNode.Parse(await (await client.PostAsync($"/v1/keys/{created["id"]}/regenerate", null)).Content.ReadAsStringAsync())!;
        TestSecrets.Register(regenerated["key"]!.GetValue<string>(), "regenerated key");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/usage")).StatusCode);

        // The console link from the same report: its token (in the query) opens the buyer's console for weeks.
        var console = new Uri(ConsoleLink().Match(report).Value);
        TestSecrets.Register(console.Query["?t=".Length..], "console link token, as sent");
        TestSecrets.Register(Uri.UnescapeDataString(console.Query["?t=".Length..]), "console link token");
        using var opened = await anonymous.GetAsync(console.PathAndQuery);
        Assert.True((int)opened.StatusCode < 400, $"the console link opens ({(int)opened.StatusCode})");

        // Wrong keys are secrets too (a typo of a real one).
        using var wrong = Authorized(server, TestSecrets.Register("sk_live_" + new string('Z', 46), "wrong key"));
        Assert.Equal(HttpStatusCode.Unauthorized, (await wrong.GetAsync("/v1/keys")).StatusCode);

        Assert.Contains(_bed.Langflow.Users, u => u.Username.StartsWith("cmp-", StringComparison.Ordinal));

        var lines = _bed.Logs.Lines.ToList();
        Assert.DoesNotContain(lines, l => HttpClientLogLine().IsMatch(l));
        Assert.Contains(lines, l => l.Contains("/keys/reveal/", StringComparison.Ordinal)); // request logging was on
        Assert.Contains(lines, l => l.Contains("/console/open", StringComparison.Ordinal));
        Assert.True(TestSecrets.All.Count >= 8, "the run created secrets to look for");
        Assert.Empty(TestSecrets.FoundIn(lines));
        var credentialLike = lines.Where(l => Regex.IsMatch(l, "\\b(Bearer|Token) [A-Za-z0-9_\\-]{12,}")).Select(l => Regex.Match(l, ".{0,200}\\b(Bearer|Token) [A-Za-z0-9_\\-]{12,}.{0,100}").Value);
        Assert.Empty(credentialLike);
    }

    private static HttpClient Authorized(RunningAdapter server, string key)
    {
        var client = server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    // What HttpClient's own logging handlers write for each request.
    [GeneratedRegex("(Start processing|Sending|End processing) HTTP request|Received HTTP response headers")]
    private static partial Regex HttpClientLogLine();

    [GeneratedRegex(@"https?://[^\s""]+/keys/reveal/[0-9A-Za-z]+")]
    private static partial Regex RevealLink();

    [GeneratedRegex(@"https?://[^\s""]+/console/open\?t=[^\s""\\]+")]
    private static partial Regex ConsoleLink();

    [GeneratedRegex("sk_live_[0-9A-Za-z]{46}")]
    private static partial Regex KeyPattern();
}
