using CmpWaldurAdapter.Web;

namespace CmpWaldurAdapter.UnitTests.Web;

public sealed class OriginRulesTests
{
    [Theory]
    [InlineData("shop.example.com", "https://shop.example.com", true)]
    [InlineData("shop.example.com", "http://shop.example.com:8080", true)]
    [InlineData("shop.example.com", "https://www.shop.example.com", false)]
    [InlineData("shop.example.com", "https://shop.example.com.evil.net", false)]
    [InlineData("shop.example.com", "https://evilshop.example.com", false)]
    [InlineData("*.example.com", "https://help.example.com", true)]
    [InlineData("*.example.com", "https://a.b.example.com", true)]
    [InlineData("*.example.com", "https://example.com", false)]
    [InlineData("*.example.com", "https://badexample.com", false)]
    [InlineData("localhost:8080", "http://localhost:8080", true)]
    [InlineData("localhost:8080", "http://localhost:8081", false)]
    [InlineData("127.0.0.1", "http://127.0.0.1:5173", true)]
    [InlineData("shop.example.com", "null", false)]
    [InlineData("shop.example.com", "", false)]
    [InlineData("shop.example.com", "file://shop.example.com", false)]
    [InlineData("shop.example.com", "https://shop.example.com/path", false)]
    [InlineData("shop.example.com", "https://user@shop.example.com", false)]
    [InlineData("*.github.io", "https://someone-else.github.io", false)] // saved before such wildcards were refused
    [InlineData("*.ada.github.io", "https://docs.ada.github.io", true)]
    public void An_origin_matches_an_exact_host_or_an_explicit_wildcard(string entry, string origin, bool allowed) =>
        Assert.Equal(allowed, OriginRules.Allows([entry], origin));

    [Theory]
    [InlineData("Shop.Example.com", "shop.example.com")]
    [InlineData("https://shop.example.com/", "shop.example.com")]
    [InlineData(" *.example.com ", "*.example.com")]
    [InlineData("localhost:3000", "localhost:3000")]
    public void Entries_are_normalised(string input, string expected)
    {
        Assert.True(OriginRules.TryNormalize(input, out var entry, out _));
        Assert.Equal(expected, entry);
    }

    [Theory]
    [InlineData("*")]
    [InlineData("*.com")]
    [InlineData("shop.example.com/path")]
    [InlineData("sho p.example.com")]
    [InlineData("")]
    [InlineData("*.*.example.com")]
    public void Unsafe_or_malformed_entries_are_refused_with_a_reason(string input)
    {
        Assert.False(OriginRules.TryNormalize(input, out _, out var error));
        Assert.NotEmpty(error);
    }

    [Theory]
    [InlineData("*.github.io", "github.io")]
    [InlineData("*.co.uk", "co.uk")]
    [InlineData("*.vercel.app:443", "vercel.app")]
    [InlineData("*.s3.amazonaws.com", "s3.amazonaws.com")]
    [InlineData("*.xn--p1ai", null)]
    [InlineData("*.kawasaki.jp", "kawasaki.jp")] // rule "*.kawasaki.jp": every name under it is a suffix
    [InlineData("*.amazonaws.com", "amazonaws.com")] // "s3.amazonaws.com" and others below it
    [InlineData("*.amplifyapp.com", "amplifyapp.com")] // public suffixes listed after 2023 count too
    [InlineData("*.claudeusercontent.com", "claudeusercontent.com")]
    public void A_wildcard_over_a_public_suffix_is_refused_as_it_would_allow_everyones_sites(string input, string? named)
    {
        Assert.False(OriginRules.TryNormalize(input, out _, out var error));
        if (named is not null)
        {
            Assert.Contains($"everyone's sites under {named}", error);
        }
    }

    [Theory]
    [InlineData("*.ada.github.io")]
    [InlineData("ada.github.io")]
    [InlineData("*.example.co.uk")]
    [InlineData("*.city.kawasaki.jp")] // "!city.kawasaki.jp": an exception to the wildcard rule
    [InlineData("*.shop.xn--p1ai")]
    public void A_wildcard_under_a_registrable_domain_is_accepted(string input) =>
        Assert.True(OriginRules.TryNormalize(input, out _, out _));
}
