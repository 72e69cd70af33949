using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Capabilities.Voice;

/// <summary>
/// Speech to text (<c>POST /v1/audio/transcriptions</c>, multipart audio) and text to speech
/// (<c>POST /v1/audio/speech</c>) in OpenAI's shapes, through the subscription's flow: audio travels to and
/// from the flow as a base64 data URI. Each interaction is charged the offering's <c>voice_interaction</c>
/// price once it succeeded; a refused or failed one costs nothing, nor one whose client left before the answer.
/// </summary>
public sealed class VoiceService(CapabilityPipeline pipeline, IOptions<VoiceOptions> options, ILogger<VoiceService> logger)
{
    private const string What = "voice";

    /// <summary>OpenAI's accepted audio formats and their media types.</summary>
    private static readonly Dictionary<string, string> AudioTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        [".flac"] = "audio/flac", [".mp3"] = "audio/mpeg", [".mp4"] = "audio/mp4", [".mpeg"] = "audio/mpeg", [".mpga"] = "audio/mpeg",
        [".m4a"] = "audio/mp4", [".ogg"] = "audio/ogg", [".wav"] = "audio/wav", [".webm"] = "audio/webm",
    };

    private const string AcceptedFormats = "flac, mp3, mp4, mpeg, mpga, m4a, ogg (Vorbis or Opus), wav or webm";

    private static readonly Dictionary<string, string> SpeechTypes = new(StringComparer.Ordinal)
    {
        ["mp3"] = "audio/mpeg", ["opus"] = "audio/opus", ["aac"] = "audio/aac", ["flac"] = "audio/flac", ["wav"] = "audio/wav", ["pcm"] = "audio/pcm",
    };

    public async Task<IResult> TranscribeAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await pipeline.AuthorizeAsync(http, Capability.Voice, What, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var limit = options.Value.MaxAudioBytes;
        if (http.Request.ContentLength > limit + 64 * 1024)
        {
            return TooLarge(limit);
        }

        if (!http.Request.HasFormContentType)
        {
            return ApiErrors.InvalidRequest("Send the audio as multipart/form-data with a \"file\" part.", "file", "missing_file");
        }

        IFormCollection form;
        try
        {
            if (http.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size)
            {
                size.MaxRequestBodySize = limit + 64 * 1024;
            }

            form = await http.Request.ReadFormAsync(new FormOptions { MultipartBodyLengthLimit = limit + 64 * 1024, ValueLengthLimit = 64 * 1024 }, cancellationToken);
        }
        catch (Exception exception) when (exception is InvalidDataException or BadHttpRequestException or IOException)
        {
            return exception.Message.Contains("limit", StringComparison.OrdinalIgnoreCase) ? TooLarge(limit) : ApiErrors.InvalidRequest("The multipart body could not be read.", "file", "invalid_multipart");
        }

        if (form.Files.GetFile("file") is not { } file)
        {
            return ApiErrors.InvalidRequest("Send the audio in a \"file\" part.", "file", "missing_file");
        }

        if (form["model"].FirstOrDefault() is { Length: > 0 } model && model != caller!.Offering.Slug)
        {
            return ModelNotFound(model, caller.Offering.Slug);
        }

        var format = form["response_format"].FirstOrDefault() ?? "json";
        if (format is not ("json" or "text" or "verbose_json"))
        {
            return ApiErrors.InvalidRequest("response_format must be json, verbose_json or text.", "response_format", "invalid_response_format");
        }

        if (!AudioTypes.TryGetValue(Path.GetExtension(file.FileName), out var mediaType))
        {
            return ApiErrors.InvalidRequest($"Unsupported audio format '{Path.GetExtension(file.FileName)}'; send one of {AcceptedFormats}.", "file", "unsupported_audio_format");
        }

        if (file.Length == 0)
        {
            return ApiErrors.InvalidRequest("The audio file is empty.", "file", "empty_audio");
        }

        if (file.Length > limit)
        {
            return TooLarge(limit);
        }

        var audio = new byte[file.Length];
        await using (var stream = file.OpenReadStream())
        {
            await stream.ReadExactlyAsync(audio, cancellationToken);
        }

        // Measured before anything is held: audio whose length its headers do not tell is refused, never charged.
        if (AudioDuration.Of(audio) is not { } duration)
        {
            return ApiErrors.InvalidRequest($"The audio could not be read: its headers do not tell how long it is. Send a valid {AcceptedFormats} file.", "file", "invalid_audio");
        }

        if (duration > options.Value.MaxAudioDuration)
        {
            return ApiErrors.Problem(StatusCodes.Status400BadRequest, $"The audio is {(duration == TimeSpan.MaxValue ? "far too" : $"{duration.TotalSeconds:0} s")} long; the limit is {options.Value.MaxAudioDuration.TotalSeconds:0} s.", "invalid_request_error", "audio_too_long", "file");
        }

        var answer = await RunAsync(caller!, $"data:{mediaType};base64,{Convert.ToBase64String(audio)}", "transcription", cancellationToken: cancellationToken);
        if (answer.Failure is not null)
        {
            return answer.Failure;
        }

        return format == "text"
            ? Results.Text(answer.Text!, "text/plain")
            : Results.Json(new Transcription(answer.Text!, answer.Charged), ApiJson.Options);
    }

    public async Task<IResult> SpeakAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await pipeline.AuthorizeAsync(http, Capability.Voice, What, cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var (request, error) = await ApiRequests.ReadJsonAsync<SpeechRequest>(http, allowUnknownMembers: true);
        if (error is not null)
        {
            return error;
        }

        if (request!.Model is { Length: > 0 } model && model != caller!.Offering.Slug)
        {
            return ModelNotFound(model, caller.Offering.Slug);
        }

        if (string.IsNullOrWhiteSpace(request.Input))
        {
            return ApiErrors.InvalidRequest("Send the text to speak as \"input\".", "input", "empty_input");
        }

        if (request.Input.Length > options.Value.MaxSpeechChars)
        {
            return ApiErrors.InvalidRequest($"The input is {request.Input.Length} characters long; the limit is {options.Value.MaxSpeechChars}.", "input", "input_too_long");
        }

        var format = request.ResponseFormat ?? "mp3";
        if (!SpeechTypes.TryGetValue(format, out var contentType))
        {
            return ApiErrors.InvalidRequest($"response_format must be one of {string.Join(", ", SpeechTypes.Keys)}.", "response_format", "invalid_response_format");
        }

        if (request.Speed is { } speed && (double.IsNaN(speed) || speed is < 0.25 or > 4))
        {
            return ApiErrors.InvalidRequest("speed must be between 0.25 and 4.", "speed", "invalid_speed");
        }

        var answer = await RunAsync(caller!, request.Input, "speech", text => FlowMedia.Bytes(text) is { Length: > 0 }, cancellationToken);
        if (answer.Failure is not null)
        {
            return answer.Failure;
        }

        http.Response.Headers["X-Credits-Charged"] = answer.Charged.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Results.Bytes(FlowMedia.Bytes(answer.Text!)!, contentType);
    }

    /// <summary>
    /// Holds the price, runs the flow, checks its answer and settles; any failure releases the hold. The request's token
    /// cancels the run: a client that left (an SDK timeout, then a retry) never got the answer, so it is not charged.
    /// </summary>
    private async Task<(string? Text, long Charged, IResult? Failure)> RunAsync(CapabilityCaller caller, string input, string kind, Func<string, bool>? valid = null, CancellationToken cancellationToken = default)
    {
        var (hold, noCredits) = await pipeline.HoldAsync(caller, ActionClass.VoiceInteraction, 1, Guid.NewGuid().ToString("N"), cancellationToken);
        if (noCredits is not null)
        {
            return (null, 0, noCredits);
        }

        var settled = false;
        try
        {
            var answer = await pipeline.RunFlowAsync(caller, input, $"{kind}:{Guid.NewGuid():N}", cancellationToken);
            if (valid is not null && !valid(answer))
            {
                throw new AgentUnavailableException($"The {kind} flow answered without audio.", transient: false);
            }

            var charged = await pipeline.SettleAsync(hold!);
            settled = true;
            return (answer, charged, null);
        }
        catch (AgentUnavailableException unavailable)
        {
            logger.LogWarning("Voice {Kind} failed for subscription {SubscriptionId}: {Reason}", kind, caller.Subscription.Id, unavailable.Message);
            return (null, 0, CapabilityPipeline.Unavailable(unavailable));
        }
        finally
        {
            if (!settled)
            {
                await pipeline.ReleaseAsync(hold!, cancellationToken.IsCancellationRequested ? $"the client left before the {kind} was done" : $"the {kind} failed");
            }
        }
    }

    private static IResult TooLarge(int limit) =>
        ApiErrors.Problem(StatusCodes.Status413PayloadTooLarge, $"The audio is larger than the limit of {limit / (1024 * 1024.0):0.#} MB.", "invalid_request_error", "audio_too_large", "file");

    private static IResult ModelNotFound(string model, string slug) =>
        ApiErrors.NotFound($"The model '{(model.Length > 60 ? model[..60] + "…" : model)}' does not exist for this key; this key's agent is '{slug}'.", "model_not_found", "model");
}
