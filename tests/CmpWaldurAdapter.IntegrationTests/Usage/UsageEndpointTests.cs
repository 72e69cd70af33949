using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

/// <summary><c>GET /v1/usage</c> on the running server, authenticated with subscription keys through <see cref="ISubscriptionAuthenticator"/>.</summary>
public sealed class UsageEndpointTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;
    private RunningAdapter _server = null!;
    private Subscription _subscription = null!;
    private string _key = null!;

    private ApiKeyService Keys => _server.Services.GetRequiredService<ApiKeyService>();

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite, new DateTimeOffset(2026, 3, 20, 10, 0, 0, TimeSpan.Zero));
        _server = await _bed.StartServerAsync();
        _subscription = await _bed.AddSubscriptionAsync();
        _key = (await Keys.CreateAsync(_subscription.Id, ApiKeyKind.Secret, "console", CancellationToken.None)).Plaintext;
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Shows_this_months_credits_by_component_and_the_organizations_balance()
    {
        var ledger = _bed.Ledger;
        await ledger.GrantAsync(_subscription.CustomerId, 100, "test funding");
        var sibling = await _bed.AddSubscriptionAsync(customer: _subscription.CustomerId);
        await ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "a");
        await ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "b");
        await ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ImageGeneration, 10, 3, "c");
        await ledger.ChargeAsync(sibling.CustomerId, sibling.Id, sibling.OfferingUuid, ActionClass.RagDocument, 5, 3, "d");
        await ledger.ReserveAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.VoiceInteraction, 2, 3, "e");

        var (status, body) = await GetAsync("/v1/usage", _key);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(_subscription.Id.ToString(), body["subscription"]!.GetValue<string>());
        Assert.Equal("2026-03", body["period"]!.GetValue<string>());
        var components = body["components"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<long>());
        Assert.Equal(new Dictionary<string, long> { ["chat_credits"] = 4, ["image_credits"] = 10, ["rag_credits"] = 0, ["voice_credits"] = 0 }, components);
        Assert.Equal(14, body["total"]!.GetValue<long>());
        Assert.Equal(100 - 14 - 5 - 2, body["balance"]!.GetValue<long>());
        // The ledger funds every subscription of the organization.
        Assert.True(body["credit_covers_agent"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Another_month_can_be_asked_for_and_a_bad_one_is_a_400_naming_the_parameter()
    {
        await _bed.Ledger.GrantAsync(_subscription.CustomerId, 10, "test funding");
        await _bed.Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, _subscription.OfferingUuid, ActionClass.ChatMessage, 2, 3, "a");

        var (earlierStatus, earlier) = await GetAsync("/v1/usage?period=2026-02", _key);
        var (badStatus, bad) = await GetAsync("/v1/usage?period=March", _key);

        Assert.Equal(HttpStatusCode.OK, earlierStatus);
        Assert.Equal(0, earlier["total"]!.GetValue<long>());
        Assert.Equal(8, earlier["balance"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        AssertError(bad, "invalid_request_error", "invalid_period", "period");
    }

    [Fact]
    public async Task A_paused_subscription_still_sees_its_usage()
    {
        await _bed.QueryAsync(async db =>
        {
            (await db.Subscriptions.FindAsync(_subscription.Id))!.Paused = true;
            return await db.SaveChangesAsync();
        });

        var (status, _) = await GetAsync("/v1/usage", _key);

        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Theory]
    [InlineData(SubscriptionState.Terminated)]
    [InlineData(SubscriptionState.Terminating)]
    public async Task The_key_of_an_ended_subscription_is_401_as_on_the_chat_api(SubscriptionState state)
    {
        // Waldur erased the resource (terminated, its keys never revoked) or a Terminate runs: the key still exists.
        await _bed.QueryAsync(async db =>
        {
            (await db.Subscriptions.FindAsync(_subscription.Id))!.State = state;
            return await db.SaveChangesAsync();
        });

        var (status, body) = await GetAsync("/v1/usage", _key);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        AssertError(body, "invalid_request_error", "invalid_api_key", null);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer sk_live_wrong")]
    [InlineData("publishable")]
    [InlineData("revoked")]
    public async Task Without_a_live_secret_key_the_answer_is_401_in_the_openai_error_shape(string? authorization)
    {
        if (authorization == "publishable")
        {
            authorization = "Bearer " + (await Keys.CreateAsync(_subscription.Id, ApiKeyKind.Publishable, "widget", CancellationToken.None)).Plaintext;
        }
        else if (authorization == "revoked")
        {
            var created = await Keys.CreateAsync(_subscription.Id, ApiKeyKind.Secret, "old", CancellationToken.None);
            await Keys.RevokeAsync(_subscription.Id, created.Key.Id, CancellationToken.None);
            authorization = "Bearer " + created.Plaintext;
        }

        using var client = _server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/usage");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        AssertError(JsonNode.Parse(text)!.AsObject(), "invalid_request_error", "invalid_api_key", null);
        Assert.DoesNotContain("sk_live_wrong", text);
    }

    private async Task<(HttpStatusCode Status, JsonObject Body)> GetAsync(string path, string token)
    {
        using var client = _server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.GetAsync(path);
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject());
    }

    internal static void AssertError(JsonObject body, string type, string code, string? param)
    {
        var error = body["error"]!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
        Assert.Equal(type, error["type"]!.GetValue<string>());
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.Equal(param, error["param"]?.GetValue<string>());
    }
}

/// <summary>
/// Waldur-funded mode: whether the organization's customer credit covers the subscription's agent, and a balance of 0
/// when it does not (its paid actions are refused), not the credits only other agents may spend.
/// </summary>
public sealed class UsageCreditCoverageTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;
    private RunningAdapter _server = null!;
    private Guid _second;

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite, new DateTimeOffset(2026, 3, 20, 10, 0, 0, TimeSpan.Zero));
        _bed.Settings["Credits:Funding"] = "WaldurCustomerCredits";
        _bed.Settings["Credits:CreditPrice"] = "0.01";
        _bed.Settings["Credits:FundingTimeout"] = "00:00:02";
        // A second offering this adapter serves, for credits limited to it.
        _second = _bed.Waldur.AddOffering("Second Agent");
        _bed.Settings["Offerings:1:Uuid"] = _second.ToString();
        _bed.Settings["Offerings:1:Slug"] = "second-agent";
        _server = await _bed.StartServerAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Theory]
    [InlineData("unrestricted", true, 150)]
    [InlineData("this agent and another", true, 150)]
    [InlineData("another agent", false, 0)]
    public async Task Says_whether_the_organizations_credit_covers_the_agent(string limitedTo, bool covers, long balance)
    {
        var subscription = await _bed.AddSubscriptionAsync();
        IEnumerable<Guid>? offerings = limitedTo switch
        {
            "unrestricted" => null,
            "this agent and another" => [subscription.OfferingUuid, _second],
            _ => [_second],
        };
        _bed.Waldur.AddCustomerCredit(subscription.CustomerId, 1.50m, offerings);
        var key = (await _server.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "server", CancellationToken.None)).Plaintext;
        using var client = _server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);

        using var response = await client.GetAsync("/v1/usage");
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(covers, body["credit_covers_agent"]!.GetValue<bool>());
        Assert.Equal(balance, body["balance"]!.GetValue<long>());
        // The organization still holds the 150 credits (another agent may spend them).
        Assert.Equal(150, (await _bed.Ledger.BalanceAsync(subscription.CustomerId)).Available);
    }
}

/// <summary>The endpoint depends only on the <see cref="ISubscriptionAuthenticator"/> seam: another implementation works as well.</summary>
public sealed class UsageAuthenticationSeamTests : IAsyncLifetime
{
    private readonly Dictionary<string, Guid> _tokens = [];
    private CreditTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite);
        _server = await _bed.StartServerAsync(services => services.AddSingleton<ISubscriptionAuthenticator>(new TableAuthenticator(_tokens)));
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_token_resolves_through_the_registered_authenticator_and_an_unknown_subscription_is_a_404()
    {
        var subscription = await _bed.AddSubscriptionAsync();
        _tokens["console-session"] = subscription.Id;
        _tokens["stale-session"] = Guid.NewGuid();
        using var client = _server.CreateClient();

        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "console-session");
        using var ok = await client.GetAsync("/v1/usage");
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "stale-session");
        using var missing = await client.GetAsync("/v1/usage");

        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(subscription.Id.ToString(), JsonNode.Parse(await ok.Content.ReadAsStringAsync())!["subscription"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        UsageEndpointTests.AssertError(JsonNode.Parse(await missing.Content.ReadAsStringAsync())!.AsObject(), "invalid_request_error", "subscription_not_found", null);
    }

    private sealed class TableAuthenticator(Dictionary<string, Guid> tokens) : ISubscriptionAuthenticator
    {
        public ValueTask<Guid?> AuthenticateAsync(string token, CancellationToken cancellationToken) =>
            ValueTask.FromResult<Guid?>(tokens.TryGetValue(token, out var id) ? id : null);
    }
}
