using System.Net;
using System.Net.Sockets;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// The client address every per-address limit counts (try page, widget sessions and messages). IPv4 as is, also
/// when it arrives IPv4-mapped on a dual-stack socket; IPv6 as its /64 network, because a subscriber line is given
/// a whole /64 and can rotate through its addresses at will.
/// </summary>
public static class ClientAddress
{
    /// <summary>The connection's address (the forwarded one when <see cref="WebOptions.TrustForwardedHeaders"/> is set), normalized.</summary>
    public static string Of(HttpContext http) => Normalize(http.Connection.RemoteIpAddress);

    /// <summary>The /48 network of the connection's IPv6 address; null for IPv4 (see <see cref="Site(IPAddress?)"/>).</summary>
    public static string? SiteOf(HttpContext http) => Site(http.Connection.RemoteIpAddress);

    /// <summary>
    /// The /48 network an IPv6 address is in, for a limit wider than its /64: a site routed a /48 holds 65,536 /64s,
    /// so counting /64s alone lets it start over that many times. Null for IPv4 (also IPv4-mapped) and no address.
    /// </summary>
    public static string? Site(IPAddress? address)
    {
        if (address is null || address.IsIPv4MappedToIPv6 || address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return null;
        }

        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 6, 10);
        return $"{new IPAddress(bytes)}/48";
    }

    public static string Normalize(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            return address.MapToIPv4().ToString();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        // A new address drops the scope id (fe80::1%eth0) along with the interface half.
        var bytes = address.GetAddressBytes();
        Array.Clear(bytes, 8, 8);
        return $"{new IPAddress(bytes)}/64";
    }
}
