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
