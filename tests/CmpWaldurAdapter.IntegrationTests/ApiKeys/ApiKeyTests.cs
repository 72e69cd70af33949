using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Api;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.ApiKeys;

/// <summary>Subscription keys: issued at provisioning through a one-time link, managed over /v1/keys, refused when they should be.</summary>
public sealed partial class ApiKeyTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;
    private RunningAdapter _server = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        _server = await _bed.StartServerAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<(Guid Order, Guid Resource, string Key)> SubscribeAsync()
    {
        var (order, resource, link) = await SubscribeUnrevealedAsync();
        var report = _bed.Waldur.Resource(resource)["report"]!.ToJsonString();
        var key = KeyPattern().Match(await KeyRevealLinks.ShowAsync(link, _server.Url)).Value;
        Assert.StartsWith("sk_live_", key);
        Assert.DoesNotContain(key, report);
        return (order, resource, key);
    }

    /// <summary>A subscription whose one-time key link was not opened yet.</summary>
    private async Task<(Guid Order, Guid Resource, string Link)> SubscribeUnrevealedAsync()
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await _bed.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));
        var resource = _bed.Waldur.ResourceOf(order);
        return (order, resource, RevealLink().Match(_bed.Waldur.Resource(resource)["report"]!.ToJsonString()).Value);
    }

    private HttpClient Client(string key)
    {
        var client = _server.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return client;
    }

    [Fact]
    public async Task The_first_key_is_revealed_once_through_the_link_in_the_report()
    {
        var (_, resource, key) = await SubscribeAsync();
        var link = RevealLink().Match(_bed.Waldur.Resource(resource)["report"]!.ToJsonString()).Value;
        using var anonymous = _server.CreateClient();

        var again = await anonymous.GetAsync(new Uri(link).PathAndQuery);

        Assert.Equal(HttpStatusCode.Gone, again.StatusCode);
        Assert.DoesNotContain(key, await again.Content.ReadAsStringAsync());
        Assert.Equal("no-store", again.Headers.CacheControl!.ToString());
        using var client = Client(key);
        var keys = JsonNode.Parse(await client.GetStringAsync("/v1/keys"))!;
        Assert.Equal("First key", keys["data"]![0]!["name"]!.GetValue<string>());
        Assert.Equal(key[..16], keys["data"]![0]!["prefix"]!.GetValue<string>());
        Assert.DoesNotContain(key, keys.ToJsonString());
    }

    [Fact]
    public async Task Opening_the_link_uses_nothing_up_only_its_pages_button_shows_the_key_once()
    {
        var (_, _, link) = await SubscribeUnrevealedAsync();
        var path = new Uri(link).PathAndQuery;

        // A mail or chat scanner fetches the link (more than once, without cookies): the key is not in it and stays unused.
        using (var scanner = new HttpClient(new HttpClientHandler { UseCookies = false }) { BaseAddress = _server.Url })
        {
            for (var fetch = 0; fetch < 2; fetch++)
            {
                var prefetched = await scanner.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, prefetched.StatusCode);
                Assert.Contains("no-store", prefetched.Headers.CacheControl!.ToString(), StringComparison.Ordinal);
                Assert.DoesNotMatch(KeyPattern(), await prefetched.Content.ReadAsStringAsync());
            }

            // Nor does a POST without the page's token (another site's form, a scanner posting) use it up.
            var forged = await scanner.PostAsync(path, new FormUrlEncodedContent([new("__RequestVerificationToken", "forged")]));
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
            Assert.DoesNotMatch(KeyPattern(), await forged.Content.ReadAsStringAsync());
        }

        // The buyer opens the page and presses its button: the key, once.
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = _server.Url };
        var form = KeyRevealLinks.FormFieldOf(await browser.GetStringAsync(path));
        var shown = await browser.PostAsync(path, new FormUrlEncodedContent([form]));
        Assert.Equal(HttpStatusCode.OK, shown.StatusCode);
        Assert.Equal("no-store", shown.Headers.CacheControl!.ToString());
        var key = KeyPattern().Match(await shown.Content.ReadAsStringAsync()).Value;
        Assert.StartsWith("sk_live_", key);
        using (var client = Client(key))
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/keys")).StatusCode);
        }

        var again = await browser.PostAsync(path, new FormUrlEncodedContent([form]));
        Assert.Equal(HttpStatusCode.Gone, again.StatusCode);
        Assert.DoesNotContain(key, await again.Content.ReadAsStringAsync());
        Assert.Equal("no-store", again.Headers.CacheControl!.ToString());
        Assert.Equal(HttpStatusCode.Gone, (await browser.GetAsync(path)).StatusCode);
    }

    [Fact]
    public async Task A_created_key_is_shown_once_and_works_and_regenerating_or_deleting_stops_the_old_value_at_once()
    {
        var (_, _, first) = await SubscribeAsync();
        using var client = Client(first);

        var created = await client.PostAsJsonAsync("/v1/keys", new { name = "CI server" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.True(created.Headers.CacheControl?.NoStore, "an answer holding a key is never stored by a cache on the way");
        var body = JsonNode.Parse(await created.Content.ReadAsStringAsync())!;
        var second = body["key"]!.GetValue<string>();
        var id = body["id"]!.GetValue<string>();
        Assert.DoesNotContain(second, await client.GetStringAsync("/v1/keys"));

        using var secondClient = Client(second);
        Assert.Equal(HttpStatusCode.OK, (await secondClient.GetAsync("/v1/keys")).StatusCode);

        var regenerating = await client.PostAsync($"/v1/keys/{id}/regenerate", null);
        Assert.True(regenerating.Headers.CacheControl?.NoStore, "an answer holding a key is never stored by a cache on the way");
        var regenerated = JsonNode.Parse(await regenerating.Content.ReadAsStringAsync())!["key"]!.GetValue<string>();
        Assert.NotEqual(second, regenerated);
        Assert.Equal(HttpStatusCode.Unauthorized, (await secondClient.GetAsync("/v1/keys")).StatusCode);
        using var third = Client(regenerated);
        Assert.Equal(HttpStatusCode.OK, (await third.GetAsync("/v1/keys")).StatusCode);

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/v1/keys/{id}")).StatusCode);
        var refused = await third.GetAsync("/v1/keys");
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("invalid_api_key", error["code"]!.GetValue<string>());
        Assert.DoesNotContain(regenerated, error.ToJsonString());
    }

    [Fact]
    public async Task Keys_of_one_subscription_cannot_touch_another_subscriptions_keys()
    {
        var (_, _, mine) = await SubscribeAsync();
        var (_, _, theirs) = await SubscribeAsync();
        using var me = Client(mine);
        using var them = Client(theirs);
        var theirKey = JsonNode.Parse(await them.GetStringAsync("/v1/keys"))!["data"]![0]!["id"]!.GetValue<string>();

        Assert.Equal(HttpStatusCode.NotFound, (await me.DeleteAsync($"/v1/keys/{theirKey}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await me.PostAsync($"/v1/keys/{theirKey}/regenerate", null)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await them.GetAsync("/v1/keys")).StatusCode);
        Assert.Single(JsonNode.Parse(await me.GetStringAsync("/v1/keys"))!["data"]!.AsArray());
    }

    [Fact]
    public async Task Publishable_keys_bad_keys_paused_and_terminated_subscriptions_are_refused()
    {
        var (_, resource, key) = await SubscribeAsync();
        using var client = Client(key);
        var publishable = JsonNode.Parse(await (await client.PostAsJsonAsync("/v1/keys", new { name = "widget", kind = "publishable" })).Content.ReadAsStringAsync())!["key"]!.GetValue<string>();
        Assert.StartsWith("pk_live_", publishable);

        using var widget = Client(publishable);
        Assert.Equal(HttpStatusCode.Forbidden, (await widget.GetAsync("/v1/keys")).StatusCode);
        using var noKey = _server.CreateClient();
        Assert.Equal(HttpStatusCode.Unauthorized, (await noKey.GetAsync("/v1/keys")).StatusCode);
        using var garbage = Client("sk_live_not-a-real-key");
        Assert.Equal(HttpStatusCode.Unauthorized, (await garbage.GetAsync("/v1/keys")).StatusCode);

        await _bed.QueryAsync(db => db.Subscriptions.ExecuteUpdateAsync(s => s.SetProperty(x => x.Paused, true)));
        var paused = await client.GetAsync("/v1/keys");
        Assert.Equal(HttpStatusCode.Forbidden, paused.StatusCode);
        Assert.Contains("paused", await paused.Content.ReadAsStringAsync());
        await _bed.QueryAsync(db => db.Subscriptions.ExecuteUpdateAsync(s => s.SetProperty(x => x.Paused, false)));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/keys")).StatusCode);

        var terminate = _bed.Waldur.PlaceOrder("Terminate", _bed.Offering, resource);
        await _bed.Services.GetRequiredService<OrderInbox>().EnqueueAsync(terminate, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(terminate) == "done", TimeSpan.FromSeconds(10));
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/v1/keys")).StatusCode);
        Assert.Contains("2 API keys were revoked.", _bed.Waldur.Resource(resource)["report"]!.ToJsonString());
    }

    [Theory]
    [InlineData("{\"name\": \"x\"", "application/json", HttpStatusCode.BadRequest, "invalid_json")]
    [InlineData("{\"name\": \"x\", \"scopes\": [\"all\"]}", "application/json", HttpStatusCode.BadRequest, "invalid_json")]
    [InlineData("{\"kind\": \"root\"}", "application/json", HttpStatusCode.BadRequest, "invalid_request")]
    [InlineData("name=x", "application/x-www-form-urlencoded", HttpStatusCode.UnsupportedMediaType, "unsupported_media_type")]
    [InlineData("", "application/json", HttpStatusCode.BadRequest, "invalid_request")]
    public async Task Bad_input_gets_a_clear_error_and_creates_nothing(string body, string contentType, HttpStatusCode status, string code)
    {
        var (_, _, key) = await SubscribeAsync();
        using var client = Client(key);

        var response = await client.PostAsync("/v1/keys", new StringContent(body, Encoding.UTF8, contentType));

        Assert.Equal(status, response.StatusCode);
        Assert.Equal(code, JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        Assert.Single(JsonNode.Parse(await client.GetStringAsync("/v1/keys"))!["data"]!.AsArray());
    }

    [Fact]
    public async Task An_oversized_body_is_refused()
    {
        var (_, _, key) = await SubscribeAsync();
        using var client = Client(key);

        var response = await client.PostAsync("/v1/keys", new StringContent("{\"name\":\"" + new string('x', 10_000) + "\"}", Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [GeneratedRegex(@"https?://[^\s""]+/keys/reveal/[0-9A-Za-z]+")]
    private static partial Regex RevealLink();

    [GeneratedRegex("sk_live_[0-9A-Za-z]{46}")]
    private static partial Regex KeyPattern();
}
