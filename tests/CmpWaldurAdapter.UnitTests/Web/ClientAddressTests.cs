using System.Net;
using CmpWaldurAdapter.Web;

namespace CmpWaldurAdapter.UnitTests.Web;

public sealed class ClientAddressTests
{
    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:3::1", "2001:db8:1:3::/64")]
    [InlineData("fe80::1%2", "fe80::/64")]
    [InlineData("::1", "::/64")]
    public void IPv4_is_kept_and_IPv6_counts_as_its_64_network(string address, string expected) =>
        Assert.Equal(expected, ClientAddress.Normalize(IPAddress.Parse(address)));

    [Fact]
    public void Addresses_of_one_64_network_are_one_client_and_of_two_networks_two()
    {
        Assert.Equal(ClientAddress.Normalize(IPAddress.Parse("2001:db8:abcd:12::1")), ClientAddress.Normalize(IPAddress.Parse("2001:db8:abcd:12:8a2e:370:7334:1")));
        Assert.NotEqual(ClientAddress.Normalize(IPAddress.Parse("2001:db8:abcd:12::1")), ClientAddress.Normalize(IPAddress.Parse("2001:db8:abcd:13::1")));
        Assert.Equal(ClientAddress.Normalize(IPAddress.Parse("::ffff:198.51.100.20")), ClientAddress.Normalize(IPAddress.Parse("198.51.100.20")));
    }

    [Theory]
    [InlineData("2001:db8:abcd:12::1", "2001:db8:abcd::/48")]
    [InlineData("2001:db8:abcd:ffff:1:2:3:4", "2001:db8:abcd::/48")]
    [InlineData("2001:db8:abce:12::1", "2001:db8:abce::/48")]
    [InlineData("203.0.113.7", null)]
    [InlineData("::ffff:203.0.113.7", null)]
    public void An_IPv6_address_is_in_its_48_and_IPv4_in_none(string address, string? expected) =>
        Assert.Equal(expected, ClientAddress.Site(IPAddress.Parse(address)));

    [Fact]
    public void No_address_is_one_shared_client() => Assert.Equal("unknown", ClientAddress.Normalize(null));
}
