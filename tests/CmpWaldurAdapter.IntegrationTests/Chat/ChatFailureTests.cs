using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Tenants;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>A failure nothing handled still reaches an OpenAI client in OpenAI's error shape, with the request id and no detail.</summary>
public sealed class ChatFailureTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync((_, _) => { }, services => services.AddSingleton<IChatCredits, BrokenCredits>());

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task An_unhandled_failure_is_a_500_in_openais_shape_naming_the_request_id_and_no_detail()
    {
        var me = await _bed.SubscribeAsync(credits: 10);
        using var http = _bed.Http(me.Key);

        using var response = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hello"}"""));

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal(("server_error", "internal_error"), (error["type"]!.GetValue<string>(), error["code"]!.GetValue<string>()));
        Assert.Contains(requestId, error["message"]!.GetValue<string>());
        Assert.DoesNotContain("ledger exploded", error.ToJsonString());
    }

    private sealed class BrokenCredits : IChatCredits
    {
        public Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken) =>
            throw new NotSupportedException("ledger exploded");

        public Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken) => throw new NotSupportedException();

        public Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
