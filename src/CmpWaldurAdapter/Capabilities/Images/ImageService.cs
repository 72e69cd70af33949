using CmpWaldurAdapter.Api;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Core.Catalogue;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Capabilities.Images;

/// <summary>Image generation limits (configuration section <c>Images</c>).</summary>
public sealed class ImageOptions
{
    public const string SectionName = "Images";

    [System.ComponentModel.DataAnnotations.Range(1, 10)]
    public int MaxImagesPerRequest { get; set; } = 4;

    [System.ComponentModel.DataAnnotations.Range(1, 100_000)]
    public int MaxPromptChars { get; set; } = 4000;
}

/// <summary>
/// <c>POST /v1/images/generations</c>: runs the subscription's flow once per image with the prompt and returns
/// what it drew (a data URI or base64 becomes <c>b64_json</c>, an address <c>url</c>). The offering's
/// <c>image_generation</c> price is held per image and charged only when every image was made.
/// </summary>
public sealed class ImageService(CapabilityPipeline pipeline, IOptions<ImageOptions> options, TimeProvider clock, ILogger<ImageService> logger)
{
    public async Task<IResult> GenerateAsync(HttpContext http, CancellationToken cancellationToken)
    {
        var (caller, refusal) = await pipeline.AuthorizeAsync(http, Capability.ImageGeneration, "image generation", cancellationToken);
        if (refusal is not null)
        {
            return refusal;
        }

        var (request, error) = await ApiRequests.ReadJsonAsync<ImageGenerationRequest>(http, allowUnknownMembers: true);
        if (error is not null)
        {
            return error;
        }

        if (request!.Model is { Length: > 0 } model && model != caller!.Offering.Slug)
        {
            return ApiErrors.NotFound($"The model '{(model.Length > 60 ? model[..60] + "…" : model)}' does not exist for this key; this key's agent is '{caller.Offering.Slug}'.", "model_not_found", "model");
        }

        if (string.IsNullOrWhiteSpace(request.Prompt))
        {
            return ApiErrors.InvalidRequest("Send the image's description as \"prompt\".", "prompt", "empty_prompt");
        }

        if (request.Prompt.Length > options.Value.MaxPromptChars)
        {
            return ApiErrors.InvalidRequest($"The prompt is {request.Prompt.Length} characters long; the limit is {options.Value.MaxPromptChars}.", "prompt", "prompt_too_long");
        }

        var count = request.N ?? 1;
        if (count < 1 || count > options.Value.MaxImagesPerRequest)
        {
            return ApiErrors.InvalidRequest($"n must be between 1 and {options.Value.MaxImagesPerRequest}.", "n", "invalid_n");
        }

        if (request.ResponseFormat is not (null or "url" or "b64_json"))
        {
            return ApiErrors.InvalidRequest("response_format must be url or b64_json.", "response_format", "invalid_response_format");
        }

        var (hold, noCredits) = await pipeline.HoldAsync(caller!, ActionClass.ImageGeneration, count, Guid.NewGuid().ToString("N"), cancellationToken);
        if (noCredits is not null)
        {
            return noCredits;
        }

        var settled = false;
        try
        {
            var images = new List<GeneratedImageData>();
            for (var i = 0; i < count; i++)
            {
                var answer = await pipeline.RunFlowAsync(caller!, request.Prompt, $"image:{Guid.NewGuid():N}", cancellationToken);
                images.Add(Image(answer) ?? throw new AgentUnavailableException("The image flow answered without an image.", transient: false));
            }

            var charged = await pipeline.SettleAsync(hold!);
            settled = true;
            return Results.Json(new ImageGenerationResponse(clock.GetUtcNow().ToUnixTimeSeconds(), images, charged), ApiJson.Options);
        }
        catch (AgentUnavailableException unavailable)
        {
            logger.LogWarning("Image generation failed for subscription {SubscriptionId}: {Reason}", caller!.Subscription.Id, unavailable.Message);
            return CapabilityPipeline.Unavailable(unavailable);
        }
        finally
        {
            if (!settled)
            {
                await pipeline.ReleaseAsync(hold!, "the image was not generated");
            }
        }
    }

    private static GeneratedImageData? Image(string answer)
    {
        if (FlowMedia.Address(answer) is { } address)
        {
            return new GeneratedImageData(address.ToString(), null, null);
        }

        return FlowMedia.Bytes(answer) is { Length: > 0 } bytes ? new GeneratedImageData(null, Convert.ToBase64String(bytes), null) : null;
    }
}
