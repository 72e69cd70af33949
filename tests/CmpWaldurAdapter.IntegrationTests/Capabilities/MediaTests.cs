using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Testing.Hosting;
using CmpWaldurAdapter.Testing.Media;
using OpenAI.Audio;
using OpenAI.Images;

namespace CmpWaldurAdapter.IntegrationTests.Capabilities;

/// <summary>Image generation and voice through the official OpenAI SDK, for an offering that enables them.</summary>
public sealed class MediaTests : IAsyncLifetime
{
    private const string Png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUg==";
    private const string Mp3 = "data:audio/mpeg;base64,SUQzBAAAAAAAI1RTU0UAAAAP";

    private ChatTestBed _bed = null!;
    private string _catalogue = null!;

    public async Task InitializeAsync() => (_bed, _catalogue) = await MediaTestBed.StartWithMediaAsync(settings => settings["Voice:MaxAudioBytes"] = "4096");

    public async Task DisposeAsync()
    {
        await _bed.DisposeAsync();
        Directory.Delete(_catalogue, recursive: true);
    }

    [Fact]
    public async Task An_image_is_generated_by_the_subscriptions_flow_and_charged_ten_credits_as_image_credits()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        _bed.Tenants.Langflow.ScriptNextAnswers(Png);

        GeneratedImage image = await _bed.Images(me.Key).GenerateImageAsync("A lighthouse at dawn", new ImageGenerationOptions { ResponseFormat = GeneratedImageFormat.Bytes });

        Assert.Equal(Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUg=="), image.ImageBytes.ToArray());
        Assert.Equal(new LedgerState(90, 0, 1, 10), await _bed.LedgerAsync(me.Customer));
        Assert.Equal(["image_credits"], await _bed.ChargedComponentsAsync(me.Customer));
        var run = Assert.Single(_bed.Tenants.Langflow.Runs);
        Assert.Equal("A lighthouse at dawn", run.Input);
        Assert.Equal(me.Subscription.LangflowFlowId, run.FlowId.ToString());
    }

    [Fact]
    public async Task Two_images_charge_twenty_and_a_flow_without_an_image_charges_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        _bed.Tenants.Langflow.ScriptNextAnswers("https://images.example.org/a.png", Png, "Sorry, I only chat.");
        using var http = _bed.Http(me.Key);

        var two = JsonNode.Parse(await (await http.PostAsync("/v1/images/generations", ChatTestBed.Json("""{"prompt": "two cats", "n": 2}"""))).Content.ReadAsStringAsync())!;
        var failed = await http.PostAsync("/v1/images/generations", ChatTestBed.Json("""{"prompt": "a dog"}"""));
        var tooMany = await http.PostAsync("/v1/images/generations", ChatTestBed.Json("""{"prompt": "a dog", "n": 9}"""));

        Assert.Equal("https://images.example.org/a.png", two["data"]![0]!["url"]!.GetValue<string>());
        Assert.NotNull(two["data"]![1]!["b64_json"]);
        Assert.Equal(20, two["credits_charged"]!.GetValue<long>());
        Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, tooMany.StatusCode);
        Assert.Equal(new LedgerState(80, 0, 1, 20), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task Speech_is_transcribed_through_the_flow_and_charged_two_credits_as_voice_credits()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        _bed.Tenants.Langflow.ScriptNextAnswers("Where is my parcel?");
        var wav = MediaTestBed.Wav(seconds: 0.01);

        AudioTranscription transcription = await _bed.Audio(me.Key).TranscribeAudioAsync(new MemoryStream(wav), "question.wav");

        Assert.Equal("Where is my parcel?", transcription.Text);
        Assert.Equal(new LedgerState(98, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
        Assert.Equal(["voice_credits"], await _bed.ChargedComponentsAsync(me.Customer));
        Assert.Equal("data:audio/wav;base64," + Convert.ToBase64String(wav), Assert.Single(_bed.Tenants.Langflow.Runs).Input);
    }

    [Theory]
    [InlineData("question.ogg", "audio/ogg")]
    [InlineData("question.m4a", "audio/mp4")]
    [InlineData("recording.m4a", "audio/mp4")]
    [InlineData("question.mp3", "audio/mpeg")]
    [InlineData("question.flac", "audio/flac")]
    [InlineData("question.webm", "audio/webm")]
    public async Task Audio_within_the_duration_limit_is_transcribed_in_every_accepted_container(string name, string mediaType)
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        _bed.Tenants.Langflow.ScriptNextAnswers("Where is my parcel?");
        // Each declares 299 s, just under the 5 minute limit.
        var bytes = name switch
        {
            "question.ogg" => SyntheticAudio.OggOpus(seconds: 299),
            "question.m4a" => SyntheticAudio.M4a(SyntheticAudio.Mvhd(1000, 299_000)),
            "recording.m4a" => SyntheticAudio.RecordedM4a(seconds: 299),
            "question.mp3" => SyntheticAudio.Mp3WithXing(SyntheticAudio.Mpeg1Layer3Header, (uint)(299 * 44_100 / 1152)),
            "question.flac" => SyntheticAudio.Flac(16_000, 16_000 * 299),
            _ => SyntheticAudio.WebM(299_000),
        };

        AudioTranscription transcription = await _bed.Audio(me.Key).TranscribeAudioAsync(new MemoryStream(bytes), name);

        Assert.Equal("Where is my parcel?", transcription.Text);
        Assert.Equal($"data:{mediaType};base64," + Convert.ToBase64String(bytes), Assert.Single(_bed.Tenants.Langflow.Runs).Input);
        Assert.Equal(new LedgerState(98, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task Text_is_spoken_through_the_flow_and_charged_two_credits_as_voice_credits()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        _bed.Tenants.Langflow.ScriptNextAnswers(Mp3);

        BinaryData speech = await _bed.Audio(me.Key).GenerateSpeechAsync("Your parcel is on its way.", GeneratedSpeechVoice.Alloy);

        Assert.Equal(Convert.FromBase64String("SUQzBAAAAAAAI1RTU0UAAAAP"), speech.ToArray());
        Assert.Equal(new LedgerState(98, 0, 1, 2), await _bed.LedgerAsync(me.Customer));
        Assert.Equal(["voice_credits"], await _bed.ChargedComponentsAsync(me.Customer));
        Assert.Equal("Your parcel is on its way.", Assert.Single(_bed.Tenants.Langflow.Runs).Input);
    }

    [Theory]
    [InlineData("speech")]
    [InlineData("transcriptions")]
    public async Task A_client_leaving_before_the_flow_answers_cancels_the_run_and_is_charged_nothing(string endpoint)
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        _bed.Tenants.Langflow.ScriptNextAnswers(endpoint == "speech" ? Mp3 : "Where is my parcel?");
        // A slow flow: the client gives up first (an SDK timeout, then a retry).
        var slow = _bed.Tenants.Langflow.Hold("POST", "/api/v1/run/.*");
        using var http = _bed.Http(me.Key);
        using var leave = new CancellationTokenSource();
        using HttpContent body = endpoint == "speech"
            ? ChatTestBed.Json("""{"input": "Your parcel is on its way.", "voice": "alloy"}""")
            : new MultipartFormDataContent { { new ByteArrayContent(MediaTestBed.Wav(seconds: 0.01)), "file", "question.wav" } };

        var post = http.PostAsync($"/v1/audio/{endpoint}", body, leave.Token);
        await Eventually.TrueAsync(() => slow.Arrived == 1, TimeSpan.FromSeconds(8), "the run reaches Langflow");
        await leave.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => post);

        // Released while Langflow still holds the run: it was cancelled, not waited for.
        await Eventually.TrueAsync(async () => (await _bed.LedgerAsync(me.Customer)).Reserved == 0, TimeSpan.FromSeconds(5), "the hold is released once the client left");
        // Langflow answers now; nobody is waiting for it any more, so nothing settles.
        slow.Release();
        await Task.Delay(500);

        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    [Fact]
    public async Task Audio_too_large_too_long_or_of_an_unknown_format_is_refused_with_a_4xx_and_costs_nothing()
    {
        var me = await _bed.SubscribeAsync(credits: 100);
        var audio = _bed.Audio(me.Key);

        var large = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream(MediaTestBed.Wav(0.1, bytes: 8000)), "large.wav"));
        var longer = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream(MediaTestBed.Wav(seconds: 600)), "long.wav"));
        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream([1, 2, 3]), "notes.txt"));
        var longOpus = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream(SyntheticAudio.OggOpus(seconds: 301)), "long.ogg"));
        var longWebm = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream(SyntheticAudio.RecordedWebM(600_000, 0)), "recording.webm"));
        var longRecording = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream(SyntheticAudio.RecordedM4a(seconds: 301)), "recording.m4a"));
        var unreadable = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream("not audio, only text"u8.ToArray()), "question.mp3"));
        var noLength = await Assert.ThrowsAsync<ClientResultException>(() => audio.TranscribeAudioAsync(new MemoryStream(SyntheticAudio.Flac(44_100, 0)), "stream.flac"));
        using var http = _bed.Http(me.Key);
        var noFile = await http.PostAsync("/v1/audio/transcriptions", new MultipartFormDataContent { { new StringContent("x"), "model" } });
        var emptySpeech = await Assert.ThrowsAsync<ClientResultException>(() => audio.GenerateSpeechAsync(" ", GeneratedSpeechVoice.Alloy));

        Assert.Equal(413, large.Status);
        Assert.Equal("audio_too_large", Code(large));
        Assert.Equal(400, longer.Status);
        Assert.Equal("audio_too_long", Code(longer));
        Assert.Equal(400, unknown.Status);
        Assert.Equal("unsupported_audio_format", Code(unknown));
        Assert.Equal(400, longOpus.Status);
        Assert.Equal("audio_too_long", Code(longOpus));
        Assert.Equal(400, longRecording.Status);
        Assert.Equal("audio_too_long", Code(longRecording));
        Assert.Equal(400, longWebm.Status);
        Assert.Equal("audio_too_long", Code(longWebm));
        foreach (var refused in new[] { unreadable, noLength })
        {
            Assert.Equal(400, refused.Status);
            var error = JsonNode.Parse(refused.GetRawResponse()!.Content.ToString())!["error"]!;
            Assert.Equal("invalid_audio", error["code"]!.GetValue<string>());
            Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
            Assert.Equal("file", error["param"]!.GetValue<string>());
            Assert.Contains("flac, mp3, mp4, mpeg, mpga, m4a, ogg (Vorbis or Opus), wav or webm", error["message"]!.GetValue<string>());
        }

        Assert.Equal(HttpStatusCode.BadRequest, noFile.StatusCode);
        Assert.Equal(400, emptySpeech.Status);
        Assert.Empty(_bed.Tenants.Langflow.Runs);
        Assert.Equal(new LedgerState(100, 0, 0, 0), await _bed.LedgerAsync(me.Customer));
    }

    private static string Code(ClientResultException error) =>
        JsonNode.Parse(error.GetRawResponse()!.Content.ToString())!["error"]!["code"]!.GetValue<string>();
}
