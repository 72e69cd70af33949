using CmpWaldurAdapter.Usage;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.UnitTests.Credits;

public sealed class ConfiguredTokenAuthenticatorTests
{
    [Fact]
    public async Task A_token_resolves_through_its_configured_hash_only()
    {
        var subscription = Guid.NewGuid();
        var options = new UsageOptions
        {
            ApiTokens =
            [
                new UsageApiToken { Sha256 = "not hex", Subscription = Guid.NewGuid() },
                new UsageApiToken { Sha256 = ConfiguredTokenAuthenticator.HashOf("sk_live_abc").ToUpperInvariant(), Subscription = subscription },
            ],
        };
        var authenticator = new ConfiguredTokenAuthenticator(new StaticMonitor(options));

        Assert.Equal(subscription, await authenticator.AuthenticateAsync("sk_live_abc", CancellationToken.None));
        Assert.Null(await authenticator.AuthenticateAsync("sk_live_abd", CancellationToken.None));
        Assert.Null(await authenticator.AuthenticateAsync(ConfiguredTokenAuthenticator.HashOf("sk_live_abc"), CancellationToken.None));
    }

    private sealed class StaticMonitor(UsageOptions value) : IOptionsMonitor<UsageOptions>
    {
        public UsageOptions CurrentValue => value;

        public UsageOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<UsageOptions, string?> listener) => null;
    }
}
