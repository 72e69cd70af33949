using System.ClientModel;
using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Chat;
using OpenAI.Audio;

namespace CmpWaldurAdapter.IntegrationTests.Capabilities;

/// <summary>An offering that does not enable a capability answers its endpoints 404 model_not_found, runs nothing and charges nothing.</summary>
public sealed class DisabledCapabilityTests : IAsyncLifetime
{
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await ChatTestBed.StartAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Images_voice_and_automations_are_not_found_for_a_chat_only_offering_and_cost_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        using var http = _bed.Http(me.Key);

        var image = await Assert.ThrowsAsync<ClientResultException>(() => _bed.Images(me.Key).GenerateImageAsync("A lighthouse"));
        var speech = await Assert.ThrowsAsync<ClientResultException>(() => _bed.Audio(me.Key).GenerateSpeechAsync("Hello", GeneratedSpeechVoice.Alloy));
        var transcription = await Assert.ThrowsAsync<ClientResultException>(() => _bed.Audio(me.Key).TranscribeAudioAsync(new MemoryStream(MediaTestBed.Wav(0.01)), "a.wav"));
        var run = await http.PostAsync("/v1/runs", ChatTestBed.Json("""{"input": {}}"""));

        foreach (var error in new[] { image, speech, transcription })
        {
            Assert.Equal(404, error.Status);
            var body = JsonNode.Parse(error.GetRawResponse()!.Content.ToString())!["error"]!;
            Assert.Equal("model_not_found", body["code"]!.GetValue<string>());
            Assert.Equal("invalid_request_error", body["type"]!.GetValue<string>());
        }

        Assert.Equal(HttpStatusCode.NotFound, run.StatusCode);
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }
}
