namespace CmpWaldurAdapter.Langflow.Api;

/// <summary>
/// Who a Langflow call runs as: a bearer token from a login (the superuser, or a tenant minting its key)
/// or a tenant's API key. Passed per request; <see cref="LangflowAuthHandler"/> turns it into a header.
/// </summary>
public sealed class LangflowCredential
{
    private LangflowCredential(string? bearer, string? apiKey)
    {
        Bearer = bearer;
        ApiKey = apiKey;
    }

    /// <summary>The Refit request property that carries the credential to the handler.</summary>
    public const string PropertyKey = "langflow-credential";

    public string? Bearer { get; }

    public string? ApiKey { get; }

    public static LangflowCredential FromToken(string accessToken) =>
        new(string.IsNullOrEmpty(accessToken) ? throw new ArgumentException("An access token is required.", nameof(accessToken)) : accessToken, null);

    public static LangflowCredential FromApiKey(string apiKey) =>
        new(null, string.IsNullOrEmpty(apiKey) ? throw new ArgumentException("An API key is required.", nameof(apiKey)) : apiKey);

    // Secrets must never reach a log line through string formatting.
    public override string ToString() => Bearer is not null ? "bearer ***" : "api key ***";
}
