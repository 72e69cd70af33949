using System.Net;
using Microsoft.Extensions.Options;
using Refit;

namespace CmpWaldurAdapter.Langflow.Api;

/// <summary>
/// The superuser's session: logs in once and reuses the token for <see cref="LangflowOptions.SuperuserTokenLifetime"/>;
/// a call refused with 401 logs in again and is repeated once (the token expired, or Langflow restarted with a new secret).
/// </summary>
public sealed class LangflowSuperuser(ILangflowApi langflow, IOptionsMonitor<LangflowOptions> options, TimeProvider clock) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private (string Token, DateTimeOffset ExpiresAt)? _session;

    public async Task<T> CallAsync<T>(Func<LangflowCredential, Task<T>> call, CancellationToken cancellationToken)
    {
        var credential = await CredentialAsync(refresh: false, cancellationToken);
        try
        {
            return await call(credential);
        }
        catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.Unauthorized)
        {
            credential = await CredentialAsync(refresh: true, cancellationToken);
            return await call(credential);
        }
    }

    public Task CallAsync(Func<LangflowCredential, Task> call, CancellationToken cancellationToken) =>
        CallAsync(async credential =>
        {
            await call(credential);
            return true;
        }, cancellationToken);

    private async Task<LangflowCredential> CredentialAsync(bool refresh, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var now = clock.GetUtcNow();
            if (!refresh && _session is { } session && session.ExpiresAt > now)
            {
                return LangflowCredential.FromToken(session.Token);
            }

            var settings = options.CurrentValue;
            var token = await langflow.LoginAsync(LoginForm(settings.SuperuserUsername!, settings.SuperuserPassword!), cancellationToken);
            _session = (token.Access_token, now + settings.SuperuserTokenLifetime);
            return LangflowCredential.FromToken(token.Access_token);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose() => _gate.Dispose();

    /// <summary>The OAuth2 password-grant form Langflow's login expects.</summary>
    public static Dictionary<string, string> LoginForm(string username, string password) => new()
    {
        ["grant_type"] = "password",
        ["username"] = username,
        ["password"] = password,
    };
}
