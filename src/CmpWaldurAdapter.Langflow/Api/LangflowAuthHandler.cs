using System.Net.Http.Headers;

namespace CmpWaldurAdapter.Langflow.Api;

/// <summary>
/// Sends the request's own credential: <c>Authorization: Bearer</c> for logins' tokens, <c>x-api-key</c> for
/// tenant keys (the header form only: the query form ends up in access logs). Requests without one go bare.
/// </summary>
internal sealed class LangflowAuthHandler : DelegatingHandler
{
    public static readonly string UserAgent =
        $"cmp-waldur-adapter/{typeof(LangflowAuthHandler).Assembly.GetName().Version?.ToString(3) ?? "0.0.0"}";

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = null;
        request.Headers.Remove("x-api-key");
        if (((IDictionary<string, object?>)request.Options).TryGetValue(LangflowCredential.PropertyKey, out var value) && value is LangflowCredential credential)
        {
            if (credential.Bearer is { } token)
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            }
            else
            {
                request.Headers.TryAddWithoutValidation("x-api-key", credential.ApiKey);
            }
        }

        request.Headers.UserAgent.Clear();
        request.Headers.TryAddWithoutValidation("User-Agent", UserAgent);
        return base.SendAsync(request, cancellationToken);
    }
}
