using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.BadInput;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Testing.Media;

namespace CmpWaldurAdapter.IntegrationTests.Capabilities;

/// <summary>The capability endpoints share the key's rate limit with chat, with OpenAI's headers and the same 429.</summary>
public sealed class CapabilityRateLimitTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;
    private string _catalogue = null!;

    // Three a minute: one comes back every 20 s, longer than the test takes.
    public async Task InitializeAsync() => (_bed, _catalogue) = await MediaTestBed.StartWithMediaAsync(settings => settings["Chat:RequestsPerMinute"] = "3");

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        Directory.Delete(_catalogue, recursive: true);
    }

    [Fact]
    public async Task Image_requests_past_the_keys_rate_limit_get_a_429_with_openais_headers_and_run_and_charge_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);
        // Refused bodies still count against the key's limit, and are cheap ones to spend it on.
        var remaining = new List<string>();
        for (var sent = 0; sent < 3; sent++)
        {
            var refused = await http.PostAsync("/v1/images/generations", ChatTestBed.Json("{}"));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            remaining.Add(refused.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        var limited = await http.PostAsync("/v1/images/generations", ChatTestBed.Json("""{"prompt": "a lighthouse"}"""));

        Assert.Equal(["2", "1", "0"], remaining);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.True(limited.Headers.RetryAfter!.Delta >= TimeSpan.FromSeconds(1));
        Assert.Contains("Retry-After", DocumentedResponses.HeadersOf(new PublicEndpoint("POST", "/v1/images/generations", EndpointAuth.SecretKey), 429));
        Assert.Equal(("3", "0", "60s"), (Header(limited, "x-ratelimit-limit-requests"), Header(limited, "x-ratelimit-remaining-requests"), Header(limited, "x-ratelimit-reset-requests")));
        Assert.Equal("rate_limit_exceeded", JsonNode.Parse(await limited.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    private static string Header(HttpResponseMessage response, string name) => response.Headers.GetValues(name).Single();
}
