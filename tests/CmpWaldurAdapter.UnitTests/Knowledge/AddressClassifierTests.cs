using System.Net;
using CmpWaldurAdapter.Knowledge.Sources;

namespace CmpWaldurAdapter.UnitTests.Knowledge;

public sealed class AddressClassifierTests
{
    [Theory]
    [InlineData("8.8.8.8", AddressRange.Public)]
    [InlineData("93.184.216.34", AddressRange.Public)]
    [InlineData("100.63.255.255", AddressRange.Public)]
    [InlineData("100.128.0.0", AddressRange.Public)]
    [InlineData("172.15.255.255", AddressRange.Public)]
    [InlineData("172.32.0.0", AddressRange.Public)]
    [InlineData("169.253.1.1", AddressRange.Public)]
    [InlineData("223.255.255.255", AddressRange.Public)]
    [InlineData("127.0.0.1", AddressRange.Loopback)]
    [InlineData("127.255.255.254", AddressRange.Loopback)]
    [InlineData("10.0.0.1", AddressRange.Private)]
    [InlineData("10.255.255.255", AddressRange.Private)]
    [InlineData("172.16.0.1", AddressRange.Private)]
    [InlineData("172.31.255.255", AddressRange.Private)]
    [InlineData("192.168.0.1", AddressRange.Private)]
    [InlineData("169.254.169.254", AddressRange.LinkLocal)]
    [InlineData("169.254.0.1", AddressRange.LinkLocal)]
    [InlineData("100.64.0.1", AddressRange.CarrierGradeNat)]
    [InlineData("100.127.255.255", AddressRange.CarrierGradeNat)]
    [InlineData("0.0.0.0", AddressRange.Unspecified)]
    [InlineData("0.1.2.3", AddressRange.Unspecified)]
    [InlineData("224.0.0.1", AddressRange.Multicast)]
    [InlineData("239.255.255.250", AddressRange.Multicast)]
    [InlineData("255.255.255.255", AddressRange.Broadcast)]
    [InlineData("240.0.0.1", AddressRange.Reserved)]
    [InlineData("192.0.2.1", AddressRange.Reserved)]
    [InlineData("198.18.0.1", AddressRange.Reserved)]
    [InlineData("198.51.100.7", AddressRange.Reserved)]
    [InlineData("203.0.113.9", AddressRange.Reserved)]
    [InlineData("192.0.0.170", AddressRange.Reserved)]
    public void IPv4_ranges(string address, AddressRange expected) =>
        Assert.Equal(expected, AddressClassifier.Classify(IPAddress.Parse(address)));

    [Theory]
    [InlineData("2606:4700:4700::1111", AddressRange.Public)]
    [InlineData("2a00:1450:4001:80b::200e", AddressRange.Public)]
    [InlineData("::1", AddressRange.Loopback)]
    [InlineData("::", AddressRange.Unspecified)]
    [InlineData("fe80::1", AddressRange.LinkLocal)]
    [InlineData("febf::1", AddressRange.LinkLocal)]
    [InlineData("fc00::1", AddressRange.Private)]
    [InlineData("fdff:ffff::1", AddressRange.Private)]
    [InlineData("fec0::1", AddressRange.Private)]
    [InlineData("ff02::1", AddressRange.Multicast)]
    [InlineData("2001:db8::1", AddressRange.Reserved)]
    [InlineData("2001:0:4136:e378:8000:63bf:3fff:fdd2", AddressRange.Reserved)]
    [InlineData("100::1", AddressRange.Reserved)]
    [InlineData("64:ff9b:1::a00:1", AddressRange.Reserved)]
    [InlineData("4000::1", AddressRange.Reserved)]
    public void IPv6_ranges(string address, AddressRange expected) =>
        Assert.Equal(expected, AddressClassifier.Classify(IPAddress.Parse(address)));

    [Theory]
    [InlineData("::ffff:127.0.0.1", AddressRange.Loopback)]
    [InlineData("::ffff:7f00:1", AddressRange.Loopback)]
    [InlineData("::ffff:169.254.169.254", AddressRange.LinkLocal)]
    [InlineData("::ffff:10.0.0.1", AddressRange.Private)]
    [InlineData("::ffff:192.168.1.1", AddressRange.Private)]
    [InlineData("::ffff:100.64.0.1", AddressRange.CarrierGradeNat)]
    [InlineData("::ffff:0.0.0.0", AddressRange.Unspecified)]
    [InlineData("::ffff:8.8.8.8", AddressRange.Public)]
    [InlineData("::127.0.0.1", AddressRange.Loopback)]
    [InlineData("::10.0.0.1", AddressRange.Private)]
    [InlineData("::8.8.8.8", AddressRange.Reserved)]
    [InlineData("64:ff9b::169.254.169.254", AddressRange.LinkLocal)]
    [InlineData("64:ff9b::8.8.8.8", AddressRange.Public)]
    [InlineData("2002:7f00:1::", AddressRange.Loopback)]
    [InlineData("2002:a9fe:a9fe::1", AddressRange.LinkLocal)]
    [InlineData("2002:808:808::1", AddressRange.Public)]
    public void IPv4_embedded_in_IPv6_is_judged_by_the_IPv4_part(string address, AddressRange expected) =>
        Assert.Equal(expected, AddressClassifier.Classify(IPAddress.Parse(address)));

    [Theory]
    [InlineData("8.8.8.8", false, true)]
    [InlineData("127.0.0.1", false, false)]
    [InlineData("127.0.0.1", true, true)]
    [InlineData("::1", true, true)]
    [InlineData("::ffff:127.0.0.1", true, true)]
    [InlineData("10.0.0.1", true, false)]
    [InlineData("169.254.169.254", true, false)]
    [InlineData("fe80::1", true, false)]
    [InlineData("0.0.0.0", true, false)]
    public void Allowing_loopback_allows_nothing_else(string address, bool allowLoopback, bool allowed) =>
        Assert.Equal(allowed, AddressClassifier.IsAllowed(IPAddress.Parse(address), allowLoopback));

    [Theory]
    [InlineData("2130706433", "127.0.0.1")]
    [InlineData("0x7f000001", "127.0.0.1")]
    [InlineData("0x7f.1", "127.0.0.1")]
    [InlineData("0177.0.0.1", "127.0.0.1")]
    [InlineData("0177.1", "127.0.0.1")]
    [InlineData("127.1", "127.0.0.1")]
    [InlineData("127.0.1", "127.0.0.1")]
    [InlineData("127.0.0.1.", "127.0.0.1")]
    [InlineData("0xA9.0xFE.0xA9.0xFE", "169.254.169.254")]
    [InlineData("2852039166", "169.254.169.254")]
    [InlineData("0251.0376.0251.0376", "169.254.169.254")]
    [InlineData("0", "0.0.0.0")]
    [InlineData("0x", "0.0.0.0")]
    [InlineData("8.8.8.8", "8.8.8.8")]
    public void Numeric_host_forms_parse_like_inet_aton(string host, string expected)
    {
        Assert.True(AddressClassifier.TryParseNumericIPv4(host, out var address));
        Assert.Equal(IPAddress.Parse(expected), address);
    }

    [Theory]
    [InlineData("example.com")]
    [InlineData("4294967296")]
    [InlineData("256.0.0.1")]
    [InlineData("1.2.3.4.5")]
    [InlineData("1.2.65536")]
    [InlineData("08.0.0.1")]
    [InlineData("0x1g.0.0.1")]
    [InlineData("1..2")]
    [InlineData("")]
    public void Other_hosts_are_not_numeric_addresses(string host) =>
        Assert.False(AddressClassifier.TryParseNumericIPv4(host, out _));

    [Theory]
    [InlineData("foo.0x7f", true)]
    [InlineData("1.2.3.4.5", true)]
    [InlineData("example.com", false)]
    [InlineData("host1", false)]
    public void A_host_whose_last_label_is_a_number_looks_numeric(string host, bool expected) =>
        Assert.Equal(expected, AddressClassifier.LooksNumeric(host));
}
