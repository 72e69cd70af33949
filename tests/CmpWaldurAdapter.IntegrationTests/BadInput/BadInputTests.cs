using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Capabilities;
using CmpWaldurAdapter.Capabilities.Automations;
using CmpWaldurAdapter.Capabilities.Handoff;
using CmpWaldurAdapter.IntegrationTests.Capabilities;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.BadInput;

/// <summary>
/// Every public endpoint (<see cref="PublicEndpoints.All"/>) against every bad input that applies to it
/// (<see cref="BadInputAttacks.All"/>): a 4xx with a clear message, never a 5xx, and nothing changed.
/// </summary>
public sealed partial class BadInputTests(BadInputTests.Adapter adapter) : IClassFixture<BadInputTests.Adapter>
{
    public static TheoryData<PublicEndpoint, BadInputAttack> Cases()
    {
        var data = new TheoryData<PublicEndpoint, BadInputAttack>();
        foreach (var endpoint in PublicEndpoints.All)
        {
            foreach (var attack in BadInputAttacks.All.Where(a => a.Applies(endpoint) is not null))
            {
                data.Add(endpoint, attack);
            }
        }

        return data;
    }

    public static TheoryData<PublicEndpoint> Endpoints() => [.. PublicEndpoints.All];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Bad_input_gets_a_clear_4xx_and_changes_nothing(PublicEndpoint endpoint, BadInputAttack attack)
    {
        var before = await adapter.StateAsync();
        using var request = attack.Build(endpoint, adapter.Context);
        using var client = adapter.Server.CreateClient();

        using var response = await adapter.SendAsync(client, endpoint, request);
        var status = (int)response.StatusCode;
        var body = await response.Content.ReadAsStringAsync();

        Assert.True(status < 500, $"{endpoint} with {attack}: {status} {Shorten(body)}");
        DocumentedResponses.AssertDeclared(endpoint, status, body, $"with {attack}");
        var expectation = attack.Applies(endpoint)!.Value;
        if (expectation != Expectation.NoServerError)
        {
            Assert.True(status is >= 400 and < 500, $"{endpoint} with {attack}: expected a 4xx, got {status} {Shorten(body)}");
        }

        if (expectation == Expectation.ClientErrorWithMessage)
        {
            var message = JsonNode.Parse(body)?["error"]?["message"]?.GetValue<string>();
            Assert.False(string.IsNullOrWhiteSpace(message), $"{endpoint} with {attack}: no error message in {Shorten(body)}");
        }

        if (expectation != Expectation.NoServerError || endpoint.Method == "GET")
        {
            // A refused request changes nothing. (An attack that does not concern an endpoint, such as a body
            // sent to a regenerate, may leave a well-formed request that is served as usual.)
            Assert.Equal(before, await adapter.StateAsync());
        }
    }

    [Theory]
    [MemberData(nameof(Endpoints))]
    public async Task The_well_formed_request_is_served(PublicEndpoint endpoint)
    {
        // The baseline: attacks are refused for what they are, not because the suite calls endpoints wrongly.
        var context = endpoint.NamesOwnedId ? adapter.Context with { KeyId = await adapter.CreateKeyAsync() } : adapter.Context;
        using var request = BadInputAttacks.Request(endpoint, context, endpoint.ValidBody is { } valid ? JsonContent.Create(JsonNode.Parse(valid)) : null);
        using var client = adapter.Server.CreateClient();

        using var response = await adapter.SendAsync(client, endpoint, request);

        var body = await response.Content.ReadAsStringAsync();
        DocumentedResponses.AssertDeclared(endpoint, (int)response.StatusCode, body, "well-formed");
        if (endpoint.ServedStatus is { } status)
        {
            Assert.True((int)response.StatusCode == status, $"{endpoint}: expected {status}, got {(int)response.StatusCode} {Shorten(body)}");
            if (endpoint.ServedCode is { } code)
            {
                Assert.Equal(code, JsonNode.Parse(body)?["error"]?["code"]?.GetValue<string>());
            }

            return;
        }

        var expected = endpoint.Path.Contains("{revealToken}", StringComparison.Ordinal) ? 410 : 299; // the fixture's link was used already
        Assert.True((int)response.StatusCode <= expected, $"{endpoint}: {(int)response.StatusCode} {Shorten(body)}");
    }

    [Fact]
    public void Every_api_endpoint_of_the_suite_is_found_in_the_api_description()
    {
        // Else a route written differently here than in the document would skip the check of its statuses.
        var undescribed = PublicEndpoints.All.Where(e => e.Path.StartsWith("/v1/", StringComparison.Ordinal) && DocumentedResponses.OperationOf(e) is null).ToList();

        Assert.True(undescribed.Count == 0, $"Not found in openapi/cmp-adapter.json: {string.Join(", ", undescribed)}");
    }

    [Fact]
    public void Every_mapped_endpoint_is_under_the_suite_or_named_with_where_its_bad_input_is_tested()
    {
        var mapped = adapter.Server.Services.GetServices<EndpointDataSource>()
            .SelectMany(source => source.Endpoints).OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(method => $"{method} /{e.RoutePattern.RawText!.TrimStart('/')}"))
            .Distinct().Order().ToList();
        var covered = PublicEndpoints.All.Select(e => e.MappedAs).Concat(PublicEndpoints.CoveredElsewhere.Keys).ToHashSet();

        var uncovered = mapped.Where(route => !covered.Contains(route)).ToList();
        Assert.True(uncovered.Count == 0, "Mapped, but neither in PublicEndpoints.All nor in CoveredElsewhere: " + string.Join(", ", uncovered));
        var stale = covered.Where(route => !mapped.Contains(route)).ToList();
        Assert.True(stale.Count == 0, "Named, but not mapped (any more): " + string.Join(", ", stale));
    }

    private static string Shorten(string text) => text.Length > 300 ? text[..300] + "…" : text;

    /// <summary>A running adapter (Langflow and RAGFlow fakes, credits granted) with two subscriptions: the caller's (key, spare key, used reveal link) and another tenant's.</summary>
    public sealed partial class Adapter : IAsyncLifetime
    {
        private TenantTestBed _bed = null!;

        public RunningAdapter Server { get; private set; } = null!;

        public BadInputContext Context { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            _bed = await TenantTestBed.CreateAsync();
            // Every capability on one agent, so each endpoint serves its well-formed request.
            _bed.Settings["Catalogue:Directory"] = await MediaTestBed.WriteMediaCatalogueAsync(yaml => yaml
                .Replace("image_generation, voice]", "image_generation, voice, automation]", StringComparison.Ordinal)
                .Replace("  voice_interaction: 2\n", "  voice_interaction: 2\n  automation_run: 3\n", StringComparison.Ordinal)
                .Replace("components:\n", "components:\n  - type: automation_credits\n    name: Automation runs\n    measured_unit: credits\n", StringComparison.Ordinal)
                .Replace("    voice_credits: \"0.01\"", "    voice_credits: \"0.01\"\n    automation_credits: \"0.01\"", StringComparison.Ordinal));
            Server = await _bed.StartServerAsync();
            var (key, token, _) = await SubscribeAsync();
            var (theirs, _, theirSubscription) = await SubscribeAsync();
            using var them = Client(theirs);
            var theirKeyId = JsonNode.Parse(await them.GetStringAsync("/v1/keys"))!["data"]![0]!["id"]!.GetValue<string>();
            using var theirRun = await them.PostAsJsonAsync("/v1/runs", new { input = new { ticket = "their ticket" } });
            theirRun.EnsureSuccessStatusCode();
            Context = new BadInputContext(key, string.Empty, theirKeyId, token, new Dictionary<string, string>
            {
                [HandoffService.EscalationIdPrefix] = HandoffService.EscalationIdPrefix + (await EscalateAsync(theirSubscription)).ToString("N"),
                [AutomationService.RunIdPrefix] = JsonNode.Parse(await theirRun.Content.ReadAsStringAsync())!["id"]!.GetValue<string>(),
            });
            Context = Context with { KeyId = await CreateKeyAsync() };
        }

        public async Task DisposeAsync() => await _bed.DisposeAsync();

        /// <summary>Sends the request with the endpoint's agent answer scripted for its run, if it gets that far.</summary>
        public async Task<HttpResponseMessage> SendAsync(HttpClient client, PublicEndpoint endpoint, HttpRequestMessage request)
        {
            if (endpoint.AgentAnswer is { } answer)
            {
                _bed.Langflow.ScriptNextAnswers(answer);
            }

            try
            {
                return await client.SendAsync(request);
            }
            finally
            {
                _bed.Langflow.ForgetScriptedAnswers();
            }
        }

        public async Task<string> CreateKeyAsync()
        {
            using var client = Client(Context.Key);
            var response = await client.PostAsJsonAsync("/v1/keys", new { name = "spare" });
            response.EnsureSuccessStatusCode();
            var created = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            TestSecrets.Register(created["key"]!.GetValue<string>(), "spare key");
            return created["id"]!.GetValue<string>();
        }

        /// <summary>Everything a request could change, except last-used times (reading is allowed to touch those).</summary>
        public Task<string> StateAsync() => _bed.QueryAsync(async db => JsonSerializer.Serialize(new
        {
            Keys = await db.ApiKeys.AsNoTracking().OrderBy(k => k.Id).Select(k => new { k.Id, k.SubscriptionId, k.Kind, k.Name, k.Hash, k.RevokedAt }).ToListAsync(),
            Reveals = await db.KeyReveals.AsNoTracking().OrderBy(r => r.Id).Select(r => new { r.Id, r.RevealedAt, HasKey = r.KeyCipher != null }).ToListAsync(),
            Subscriptions = await db.Subscriptions.AsNoTracking().OrderBy(s => s.Id).Select(s => new { s.Id, s.State, s.Paused }).ToListAsync(),
            Ledger = await db.LedgerEntries.CountAsync(),
            Holds = await db.CreditReservations.CountAsync(),
            Idempotent = await db.IdempotentRequests.CountAsync(),
            Documents = await db.KnowledgeDocuments.CountAsync(),
            Connectors = await db.KnowledgeConnectors.CountAsync(),
            Runs = await db.AutomationRuns.CountAsync(),
            Webhooks = await db.HandoffWebhooks.AsNoTracking().OrderBy(w => w.SubscriptionId).Select(w => new { w.SubscriptionId, w.Url, w.SecretCipher }).ToListAsync(),
            Allowances = await db.Allowances.AsNoTracking().OrderBy(a => a.Key).Select(a => new { a.Key, a.Used }).ToListAsync(),
        }));

        /// <summary>An escalated conversation of the subscription (a cursor of its escalations list).</summary>
        private Task<Guid> EscalateAsync(Guid subscriptionId) => _bed.QueryAsync(async db =>
        {
            var now = DateTimeOffset.UtcNow;
            var row = new HandoffConversation
            {
                Id = Guid.CreateVersion7(now),
                SubscriptionId = subscriptionId,
                Conversation = "their-conversation",
                EscalatedAt = now,
                EscalationReason = "visitor_request",
                CreatedAt = now,
                UpdatedAt = now,
            };
            db.HandoffConversations.Add(row);
            await db.SaveChangesAsync();
            return row.Id;
        });

        private async Task<(string Key, string RevealToken, Guid Subscription)> SubscribeAsync()
        {
            var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, TenantTestBed.Attributes(), Guid.NewGuid(), Guid.NewGuid());
            await Server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
            await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(20));
            var subscription = await _bed.SubscriptionAsync(_bed.Waldur.ResourceOf(order));
            await Server.Services.GetRequiredService<CreditLedger>().GrantAsync(subscription.CustomerId, 1000, "bad-input suite");
            var link = new Uri(RevealLink().Match(_bed.Waldur.Resource(_bed.Waldur.ResourceOf(order))["report"]!.ToJsonString()).Value);
            var key = KeyPattern().Match(await KeyRevealLinks.ShowAsync(link.ToString(), Server.Url)).Value;
            return (TestSecrets.Register(key, "subscription key"), TestSecrets.Register(link.Segments[^1], "reveal token"), subscription.Id);
        }

        private HttpClient Client(string key)
        {
            var client = Server.CreateClient();
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            return client;
        }

        [GeneratedRegex(@"https?://[^\s""]+/keys/reveal/[0-9A-Za-z]+")]
        private static partial Regex RevealLink();

        [GeneratedRegex("sk_live_[0-9A-Za-z]{46}")]
        private static partial Regex KeyPattern();
    }
}
