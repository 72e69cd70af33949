using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Capabilities.Images;
using CmpWaldurAdapter.Capabilities.Voice;

namespace CmpWaldurAdapter.Capabilities;

/// <summary>Image generation and voice in OpenAI's shapes, for offerings that enable them (others answer 404 model_not_found).</summary>
public static class MediaEndpoints
{
    public static void MapMediaEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var images = endpoints.MapGroup("/v1/images").WithTags("Images");
        images.MapPost("/generations", (HttpContext http, ImageService service, CancellationToken cancellationToken) => service.GenerateAsync(http, cancellationToken))
            .WithName("CreateImage")
            .WithSummary("Generates images with the key's agent (OpenAI's request and response); charged the offering's image_generation price per image.")
            .WithDescription("Body: prompt, n (1-4), response_format (url or b64_json), model (the key's agent, optional). The answer's data items carry url or b64_json, as the agent's image flow produced them.")
            .DocumentsBody<ImageGenerationRequest>()
            .Produces<ImageGenerationResponse>()
            .Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(429).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);

        var audio = endpoints.MapGroup("/v1/audio").WithTags("Voice");
        audio.MapPost("/transcriptions", (HttpContext http, VoiceService service, CancellationToken cancellationToken) => service.TranscribeAsync(http, cancellationToken))
            .WithName("CreateTranscription")
            .WithSummary("Speech to text with the key's agent (OpenAI's multipart request); charged the offering's voice_interaction price.")
            .WithDescription("Multipart form: file (flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm; at most Voice:MaxAudioBytes and Voice:MaxAudioDuration long, the duration read from the container headers; audio whose duration cannot be read is refused with invalid_audio), model, response_format (json, verbose_json or text).")
            .DocumentsBody<TranscriptionForm>("multipart/form-data")
            .Produces<Transcription>()
            .Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(429).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);
        audio.MapPost("/speech", (HttpContext http, VoiceService service, CancellationToken cancellationToken) => service.SpeakAsync(http, cancellationToken))
            .WithName("CreateSpeech")
            .WithSummary("Text to speech with the key's agent (OpenAI's request); answers the audio bytes; charged the offering's voice_interaction price.")
            .WithDescription("Body: input (at most Voice:MaxSpeechChars characters), voice, response_format (mp3, opus, aac, flac, wav, pcm), speed, model. The X-Credits-Charged header tells the credits charged.")
            .DocumentsBody<SpeechRequest>()
            .Produces(200, contentType: "audio/mpeg")
            .Produces<ApiErrorBody>(400).Produces<ApiErrorBody>(401).Produces<ApiErrorBody>(402).Produces<ApiErrorBody>(403).Produces<ApiErrorBody>(404)
            .Produces<ApiErrorBody>(413).Produces<ApiErrorBody>(415).Produces<ApiErrorBody>(429).Produces<ApiErrorBody>(502).Produces<ApiErrorBody>(503);
    }
}
