using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Events;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Chat;
using OpenAI.Images;

namespace CmpWaldurAdapter.IntegrationTests.Capabilities;

/// <summary>
/// An offering whose price book makes chat and images free (0 credits): they are served to an organization
/// that was never granted anything, each recorded in the ledger as a charge of 0, and still refused when
/// the subscription is paused or the key revoked (the 0-credit hold re-checks both, as a paid one does).
/// </summary>
public sealed class FreeActionTests : IAsyncLifetime
{
    private const string Png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==";

    private ChatTestBed _bed = null!;
    private string _catalogue = null!;

    public async Task InitializeAsync() => (_bed, _catalogue) = await MediaTestBed.StartWithMediaAsync(pricing: yaml => yaml
        .Replace("  chat_message: 2\n", "  chat_message: 0\n", StringComparison.Ordinal)
        .Replace("  image_generation: 10\n", "  image_generation: 0\n", StringComparison.Ordinal));

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        Directory.Delete(_catalogue, recursive: true);
    }

    [Fact]
    public async Task Free_chat_and_images_are_answered_without_credits_and_recorded_as_charges_of_zero()
    {
        var me = await _bed.SubscribeAsync(credits: 0);
        _bed.Tenants.Langflow.ScriptNextAnswers("Hello for free.", Png);

        ChatCompletion completion = await _bed.OpenAi(me.Key).CompleteChatAsync([new UserChatMessage("Hi")]);
        GeneratedImage image = await _bed.Images(me.Key).GenerateImageAsync("A lighthouse", new ImageGenerationOptions { ResponseFormat = GeneratedImageFormat.Bytes });

        Assert.Equal("Hello for free.", completion.Content[0].Text);
        Assert.Equal(Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUg=="), image.ImageBytes.ToArray());
        Assert.Equal(new LedgerState(0, 0, 2, 0), await _bed.LedgerAsync(me.Customer));
        Assert.Equal(["chat_credits", "image_credits"], (await _bed.ChargedComponentsAsync(me.Customer)).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_free_message_reports_zero_credits_charged_plain_and_streamed()
    {
        var me = await _bed.SubscribeAsync(credits: 0);
        using var http = _bed.Http(me.Key);

        using var plain = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));
        var body = JsonNode.Parse(await plain.Content.ReadAsStringAsync())!;
        using var streamed = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}"""));
        var text = await streamed.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Equal(0, body["usage"]!["credits_charged"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Contains("\"credits_charged\":0", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", text, StringComparison.Ordinal);
        Assert.Equal(new LedgerState(0, 0, 2, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task A_free_action_is_still_refused_for_a_paused_subscription_and_a_revoked_key()
    {
        var me = await _bed.SubscribeAsync(credits: 0);
        using var http = _bed.Http(me.Key);
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);

        _bed.Tenants.Waldur.SetResourceFlags(me.Resource, paused: true, downscaled: false);
        await _bed.Services.GetRequiredService<ResourceStateSync>().SyncAsync(me.Resource, CancellationToken.None);
        using var paused = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));
        using var pausedImage = await http.PostAsync("/v1/images/generations", ChatTestBed.Json("""{"prompt":"a dog"}"""));

        _bed.Tenants.Waldur.SetResourceFlags(me.Resource, paused: false, downscaled: false);
        await _bed.Services.GetRequiredService<ResourceStateSync>().SyncAsync(me.Resource, CancellationToken.None);
        await _bed.Tenants.QueryAsync(db => db.ApiKeys.Where(k => k.SubscriptionId == me.Subscription.Id)
            .ExecuteUpdateAsync(k => k.SetProperty(x => x.RevokedAt, DateTimeOffset.UtcNow)));
        using var revoked = await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""));

        Assert.Equal(HttpStatusCode.Forbidden, paused.StatusCode);
        Assert.Contains("subscription_suspended", await paused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.Forbidden, pausedImage.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, revoked.StatusCode);
        Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(0, 0, 1, 0), await _bed.LedgerAsync(me.Customer));
    }
}
