using CmpWaldurAdapter.Knowledge.Sources;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Capabilities.Handoff;

/// <summary>
/// Where a buyer's webhook may point. The adapter POSTs transcripts there from inside the provider's network, so a
/// webhook is an SSRF vector: it must be https, and its host must resolve to public internet addresses only. The
/// same guard pins every delivery's connection to checked addresses (a name that later resolves inward is refused
/// then too), and deliveries follow no redirects.
/// </summary>
public sealed class WebhookAddresses(IHostAddressResolver resolver, IOptionsMonitor<HandoffOptions> options)
{
    public const int MaxLength = 2000;

    internal RemoteAddressGuard Guard { get; } = new(resolver, () => options.CurrentValue.AllowLoopbackWebhooks);

    /// <summary>The address to save, or why it is refused (a message for the buyer).</summary>
    public async Task<(Uri? Address, string? Refusal)> CheckAsync(string? url, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(url) || url.Length > MaxLength || !Uri.TryCreate(url.Trim(), UriKind.Absolute, out var address)
            || address.Scheme is not ("https" or "http") || string.IsNullOrEmpty(address.Host))
        {
            return (null, $"Enter the full https address that receives the events (at most {MaxLength} characters).");
        }

        if (address.Scheme != Uri.UriSchemeHttps && !Guard.AllowLoopback)
        {
            return (null, "The webhook address must use https: the events carry conversation transcripts.");
        }

        if (!string.IsNullOrEmpty(address.UserInfo))
        {
            return (null, "Put no user name or password in the webhook address; verify deliveries with the signing secret.");
        }

        try
        {
            await Guard.CheckAsync(address, SourceKind.Url, cancellationToken);
        }
        catch (SourceRejectedException)
        {
            return (null, $"{address.Host} is not a public internet address; webhooks are sent only to the public internet.");
        }
        catch (SourceNotFoundException)
        {
            return (null, $"The host {address.Host} does not exist.");
        }
        catch (SourceUnavailableException)
        {
            return (null, $"The host {address.Host} could not be looked up right now; try again shortly.");
        }

        return (address, null);
    }
}
