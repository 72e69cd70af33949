using CmpWaldurAdapter.Capabilities.Images;
using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Configuration;
using CmpWaldurAdapter.Ragflow;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Credits;

/// <summary>
/// <c>Credits:ReservationTimeout</c> against the work one hold covers, whose limits other sections set. A hold the
/// sweeper releases before its request settles it leaves the answer uncharged (the settle finds it gone), so it must
/// outlive the longest such request: an image request's runs, one per image, and a message's knowledge search and run.
/// </summary>
internal sealed class ReservationTimeoutValidation(IServiceProvider services) : IValidateOptions<CreditsOptions>
{
    public ValidateOptionsResult Validate(string? name, CreditsOptions options)
    {
        // A timeout that is not positive is reported by its own check. The others' sections are read only when valid:
        // their own failures are reported under their own keys, once.
        if (name != Options.DefaultName || options.ReservationTimeout <= TimeSpan.Zero || ValidOptions.OrNull<ChatOptions>(services) is not { } chat)
        {
            return ValidateOptionsResult.Skip;
        }

        var failures = new List<string>();
        if (ValidOptions.OrNull<ImageOptions>(services) is { } images && options.ReservationTimeout <= chat.RunTimeout * images.MaxImagesPerRequest)
        {
            failures.Add($"Credits:ReservationTimeout must be longer than Images:MaxImagesPerRequest times Chat:RunTimeout ({chat.RunTimeout * images.MaxImagesPerRequest}): an image request runs its flow once per image under one hold.");
        }

        // Only a configured RAGFlow is searched; the search is one attempt (a POST is never retried).
        if (ValidOptions.OrNull<RagflowOptions>(services) is { BaseUrl: not null } ragflow && options.ReservationTimeout <= ragflow.AttemptTimeout + chat.RunTimeout)
        {
            failures.Add($"Credits:ReservationTimeout must be longer than Ragflow:AttemptTimeout plus Chat:RunTimeout ({ragflow.AttemptTimeout + chat.RunTimeout}): a message's hold is taken before its knowledge search and settled after its run.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
