using CmpWaldurAdapter.ApiKeys;

namespace CmpWaldurAdapter.UnitTests.ApiKeys;

public sealed class ApiKeyFormatTests
{
    [Theory]
    [InlineData(ApiKeyKind.Secret, "sk_live_")]
    [InlineData(ApiKeyKind.Publishable, "pk_live_")]
    public void Keys_carry_their_kind_and_a_valid_checksum(ApiKeyKind kind, string prefix)
    {
        var key = ApiKeyFormat.Generate(kind);

        Assert.StartsWith(prefix, key);
        Assert.Equal(ApiKeyFormat.Length, key.Length);
        Assert.True(ApiKeyFormat.TryParse(key, out var parsed, out var lookup));
        Assert.Equal(kind, parsed);
        Assert.Equal(key[..16], lookup);
        Assert.Matches("^[sp]k_live_[0-9A-Za-z]{46}$", key);
    }

    [Fact]
    public void Every_key_is_different()
    {
        var keys = Enumerable.Range(0, 2000).Select(_ => ApiKeyFormat.Generate(ApiKeyKind.Secret)).ToHashSet();

        Assert.Equal(2000, keys.Count);
        Assert.Equal(2000, keys.Select(ApiKeyFormat.PrefixOf).Distinct().Count());
    }

    [Fact]
    public void A_typo_fails_the_checksum_without_a_database_lookup()
    {
        var key = ApiKeyFormat.Generate(ApiKeyKind.Secret);
        var typo = key[..20] + (key[20] == 'a' ? 'b' : 'a') + key[21..];

        Assert.False(ApiKeyFormat.TryParse(typo, out _, out _));
        Assert.False(ApiKeyFormat.TryParse(key[..^1], out _, out _));
        Assert.False(ApiKeyFormat.TryParse("rk_live_" + key[8..], out _, out _));
        Assert.False(ApiKeyFormat.TryParse(null, out _, out _));
    }

    [Fact]
    public void Hashes_are_stable_and_compared_in_constant_time()
    {
        var key = ApiKeyFormat.Generate(ApiKeyKind.Secret);

        Assert.Equal(ApiKeyFormat.Hash(key), ApiKeyFormat.Hash(key));
        Assert.Equal(64, ApiKeyFormat.Hash(key).Length);
        Assert.True(ApiKeyFormat.HashesEqual(ApiKeyFormat.Hash(key), ApiKeyFormat.Hash(key)));
        Assert.False(ApiKeyFormat.HashesEqual(ApiKeyFormat.Hash(key), ApiKeyFormat.Hash(key + "x")));
    }
}
