using System.Net.Http.Headers;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Waldur.Api;

/// <summary>Adds <c>Authorization: Token …</c> and the adapter's User-Agent to every Waldur request.</summary>
internal sealed class WaldurTokenHandler(IOptionsMonitor<WaldurOptions> options) : DelegatingHandler
{
    /// <summary>
    /// Names the adapter and its version. Waldur marks an offering's integration as active when the
    /// User-Agent of order calls contains "waldur-site-agent", so the adapter identifies as compatible.
    /// </summary>
    public static readonly string UserAgent =
        $"cmp-waldur-adapter/{typeof(WaldurTokenHandler).Assembly.GetName().Version?.ToString(3) ?? "0.0.0"} (waldur-site-agent-compatible)";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Token", options.CurrentValue.Token);
        request.Headers.UserAgent.Clear();
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        return base.SendAsync(request, cancellationToken);
    }
}
