using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Usage;

/// <summary><c>GET /v1/usage</c> on the running server, authenticated through <see cref="ISubscriptionAuthenticator"/>.</summary>
public sealed class UsageEndpointTests : IAsyncLifetime
{
    private const string Token = "sk_test_usage_0123456789";

    private CreditTestBed _bed = null!;
    private RunningAdapter _server = null!;
    private Subscription _subscription = null!;

    public async Task InitializeAsync()
    {
        _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite, new DateTimeOffset(2026, 3, 20, 10, 0, 0, TimeSpan.Zero));
        var subscriptionId = Guid.NewGuid();
        _bed.Settings["Usage:ApiTokens:0:Sha256"] = ConfiguredTokenAuthenticator.HashOf(Token);
        _bed.Settings["Usage:ApiTokens:0:Subscription"] = subscriptionId.ToString();
        _bed.Settings["Usage:ApiTokens:1:Sha256"] = ConfiguredTokenAuthenticator.HashOf("sk_test_orphan");
        _bed.Settings["Usage:ApiTokens:1:Subscription"] = Guid.NewGuid().ToString();
        _server = await _bed.StartServerAsync();
        _subscription = await _bed.AddSubscriptionAsync(id: subscriptionId);
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Shows_this_months_credits_by_component_and_the_organizations_balance()
    {
        var ledger = _bed.Ledger;
        await ledger.GrantAsync(_subscription.CustomerId, 100, "test funding");
        var sibling = await _bed.AddSubscriptionAsync(customer: _subscription.CustomerId);
        await ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, ActionClass.ChatMessage, 2, 3, "a");
        await ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, ActionClass.ChatMessage, 2, 3, "b");
        await ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, ActionClass.ImageGeneration, 10, 3, "c");
        await ledger.ChargeAsync(sibling.CustomerId, sibling.Id, ActionClass.RagDocument, 5, 3, "d");
        await ledger.ReserveAsync(_subscription.CustomerId, _subscription.Id, ActionClass.VoiceInteraction, 2, 3, "e");

        var (status, body) = await GetAsync("/v1/usage", Token);

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(_subscription.Id.ToString(), body["subscription"]!.GetValue<string>());
        Assert.Equal("2026-03", body["period"]!.GetValue<string>());
        var components = body["components"]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<long>());
        Assert.Equal(new Dictionary<string, long> { ["chat_credits"] = 4, ["image_credits"] = 10, ["rag_credits"] = 0, ["voice_credits"] = 0 }, components);
        Assert.Equal(14, body["total"]!.GetValue<long>());
        Assert.Equal(100 - 14 - 5 - 2, body["balance"]!.GetValue<long>());
    }

    [Fact]
    public async Task Another_month_can_be_asked_for_and_a_bad_one_is_a_400_naming_the_parameter()
    {
        await _bed.Ledger.GrantAsync(_subscription.CustomerId, 10, "test funding");
        await _bed.Ledger.ChargeAsync(_subscription.CustomerId, _subscription.Id, ActionClass.ChatMessage, 2, 3, "a");

        var (earlierStatus, earlier) = await GetAsync("/v1/usage?period=2026-02", Token);
        var (badStatus, bad) = await GetAsync("/v1/usage?period=March", Token);

        Assert.Equal(HttpStatusCode.OK, earlierStatus);
        Assert.Equal(0, earlier["total"]!.GetValue<long>());
        Assert.Equal(8, earlier["balance"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.BadRequest, badStatus);
        AssertError(bad, "invalid_request_error", "invalid_period", "period");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("Basic dXNlcjpwYXNz")]
    [InlineData("Bearer sk_test_wrong")]
    public async Task Without_a_valid_key_the_answer_is_401_in_the_openai_error_shape(string? authorization)
    {
        using var client = _server.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/usage");
        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
        AssertError(JsonNode.Parse(text)!.AsObject(), "invalid_request_error", authorization is "Bearer sk_test_wrong" ? "invalid_api_key" : "missing_api_key", null);
        Assert.DoesNotContain("sk_test_wrong", text);
    }

    [Fact]
    public async Task A_key_of_a_subscription_that_no_longer_exists_is_a_404()
    {
        var (status, body) = await GetAsync("/v1/usage", "sk_test_orphan");

        Assert.Equal(HttpStatusCode.NotFound, status);
        AssertError(body, "invalid_request_error", "subscription_not_found", null);
    }

    [Fact]
    public async Task The_authentication_seam_can_be_backed_by_another_implementation()
    {
        var authenticator = _server.Services.GetRequiredService<ISubscriptionAuthenticator>();

        Assert.IsType<ConfiguredTokenAuthenticator>(authenticator);
        Assert.Equal(_subscription.Id, await authenticator.AuthenticateAsync(Token, CancellationToken.None));
        Assert.Null(await authenticator.AuthenticateAsync(Token + "x", CancellationToken.None));
    }

    private async Task<(HttpStatusCode Status, JsonObject Body)> GetAsync(string path, string token)
    {
        using var client = _server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.GetAsync(path);
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject());
    }

    private static void AssertError(JsonObject body, string type, string code, string? param)
    {
        var error = body["error"]!.AsObject();
        Assert.False(string.IsNullOrWhiteSpace(error["message"]!.GetValue<string>()));
        Assert.Equal(type, error["type"]!.GetValue<string>());
        Assert.Equal(code, error["code"]!.GetValue<string>());
        Assert.Equal(param, error["param"]?.GetValue<string>());
        Assert.True(error.ContainsKey("param"));
    }
}
