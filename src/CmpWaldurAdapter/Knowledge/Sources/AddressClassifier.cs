using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>What kind of network an address belongs to, for SSRF decisions.</summary>
public enum AddressRange
{
    /// <summary>Globally routable unicast: the only range a buyer's URL may reach.</summary>
    Public,
    Loopback,
    /// <summary>RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique-local fc00::/7 and site-local fec0::/10.</summary>
    Private,
    /// <summary>169.254/16 (cloud metadata lives at 169.254.169.254) and fe80::/10.</summary>
    LinkLocal,
    /// <summary>100.64/10, shared address space behind carrier-grade NAT.</summary>
    CarrierGradeNat,
    /// <summary>0.0.0.0/8 and ::, which the kernel treats as "this host".</summary>
    Unspecified,
    Multicast,
    Broadcast,
    /// <summary>Documentation, benchmarking, future-use, Teredo and anything else not public unicast.</summary>
    Reserved,
}

/// <summary>Classifies IP addresses, IPv4 embedded in IPv6 included, and parses the numeric IPv4 host forms.</summary>
public static class AddressClassifier
{
    public static bool IsAllowed(IPAddress address, bool allowLoopback)
    {
        var range = Classify(address);
        return range == AddressRange.Public || (allowLoopback && range == AddressRange.Loopback);
    }

    public static AddressRange Classify(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return address.AddressFamily switch
        {
            AddressFamily.InterNetwork => ClassifyV4(address.GetAddressBytes()),
            AddressFamily.InterNetworkV6 => ClassifyV6(address.GetAddressBytes()),
            _ => AddressRange.Reserved,
        };
    }

    private static AddressRange ClassifyV4(ReadOnlySpan<byte> b)
    {
        return b[0] switch
        {
            0 => AddressRange.Unspecified,
            10 => AddressRange.Private,
            100 when (b[1] & 0xC0) == 64 => AddressRange.CarrierGradeNat,
            127 => AddressRange.Loopback,
            169 when b[1] == 254 => AddressRange.LinkLocal,
            172 when (b[1] & 0xF0) == 16 => AddressRange.Private,
            192 when b[1] == 168 => AddressRange.Private,
            // 192.0.0/24 protocol assignments, 192.0.2/24 documentation, 192.88.99/24 old 6to4 relays.
            192 when b[1] == 0 && b[2] is 0 or 2 => AddressRange.Reserved,
            192 when b[1] == 88 && b[2] == 99 => AddressRange.Reserved,
            198 when b[1] is 18 or 19 => AddressRange.Reserved,
            198 when b[1] == 51 && b[2] == 100 => AddressRange.Reserved,
            203 when b[1] == 0 && b[2] == 113 => AddressRange.Reserved,
            >= 224 and <= 239 => AddressRange.Multicast,
            255 when b[1] == 255 && b[2] == 255 && b[3] == 255 => AddressRange.Broadcast,
            >= 240 => AddressRange.Reserved,
            _ => AddressRange.Public,
        };
    }

    private static AddressRange ClassifyV6(ReadOnlySpan<byte> b)
    {
        // ::/96 holds ::, ::1, IPv4-compatible (deprecated) and, with ffff in bytes 10-11, IPv4-mapped.
        if (IsZero(b[..10]))
        {
            var tail = b[12..];
            if (b[10] == 0xFF && b[11] == 0xFF)
            {
                return ClassifyV4(tail);
            }

            if (b[10] == 0 && b[11] == 0)
            {
                if (IsZero(b[12..15]) && b[15] <= 1)
                {
                    return b[15] == 0 ? AddressRange.Unspecified : AddressRange.Loopback;
                }

                return Embedded(ClassifyV4(tail));
            }

            return AddressRange.Reserved;
        }

        // 64:ff9b::/96, well-known NAT64: reaches whatever IPv4 it embeds.
        if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && IsZero(b[4..12]))
        {
            return ClassifyV4(b[12..]);
        }

        // 2002::/16, 6to4: the IPv4 relay sits in bytes 2-5.
        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return ClassifyV4(b[2..6]);
        }

        if (b[0] == 0xFF)
        {
            return AddressRange.Multicast;
        }

        if ((b[0] & 0xFE) == 0xFC || (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0))
        {
            return AddressRange.Private;
        }

        if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80)
        {
            return AddressRange.LinkLocal;
        }

        // 2001::/23 (Teredo, ORCHID, benchmarking) and 2001:db8::/32 documentation.
        if (b[0] == 0x20 && b[1] == 0x01 && (b[2] < 0x02 || (b[2] == 0x0D && b[3] == 0xB8)))
        {
            return AddressRange.Reserved;
        }

        // Only 2000::/3 is global unicast today; the rest is unassigned or special.
        return (b[0] & 0xE0) == 0x20 ? AddressRange.Public : AddressRange.Reserved;
    }

    // An IPv4-compatible address is deprecated: refuse it even when the IPv4 part is public.
    private static AddressRange Embedded(AddressRange v4) => v4 == AddressRange.Public ? AddressRange.Reserved : v4;

    private static bool IsZero(ReadOnlySpan<byte> bytes) => !bytes.ContainsAnyExcept((byte)0);

    /// <summary>
    /// Parses a host the way inet_aton and URL parsers do: 1 to 4 dot-separated parts in decimal, octal
    /// (leading 0) or hex (0x), the last part filling the remaining bytes, and one trailing dot allowed.
    /// So <c>2130706433</c>, <c>0x7f.1</c> and <c>0177.0.0.1.</c> are all 127.0.0.1.
    /// </summary>
    public static bool TryParseNumericIPv4(string host, out IPAddress? address)
    {
        address = null;
        if (string.IsNullOrEmpty(host))
        {
            return false;
        }

        var text = host.EndsWith('.') ? host[..^1] : host;
        var parts = text.Split('.');
        if (parts.Length is 0 or > 4)
        {
            return false;
        }

        var values = new ulong[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!TryParsePart(parts[i], out values[i]))
            {
                return false;
            }
        }

        ulong result = 0;
        for (var i = 0; i < values.Length - 1; i++)
        {
            if (values[i] > 255)
            {
                return false;
            }

            result |= values[i] << (8 * (3 - i));
        }

        var last = values[^1];
        var lastBits = 8 * (4 - (values.Length - 1));
        if (last >= 1UL << lastBits)
        {
            return false;
        }

        result |= last;
        address = new IPAddress([(byte)(result >> 24), (byte)(result >> 16), (byte)(result >> 8), (byte)result]);
        return true;
    }

    /// <summary>True when the last label is a number: URL parsers then insist the host is IPv4, so anything else is malformed.</summary>
    public static bool LooksNumeric(string host)
    {
        var text = host.EndsWith('.') ? host[..^1] : host;
        var last = text[(text.LastIndexOf('.') + 1)..];
        return last.Length > 0 && TryParsePart(last, out _);
    }

    private static bool TryParsePart(string part, out ulong value)
    {
        value = 0;
        if (part.Length == 0 || part.Length > 32)
        {
            return false;
        }

        if (part.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            var hex = part[2..];
            return hex.Length == 0 || ulong.TryParse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        }

        if (part.Length > 1 && part[0] == '0')
        {
            foreach (var c in part)
            {
                if (c is < '0' or > '7')
                {
                    return false;
                }

                value = checked((value * 8) + (ulong)(c - '0'));
                if (value > uint.MaxValue)
                {
                    return false;
                }
            }

            return true;
        }

        return part.All(char.IsAsciiDigit) && ulong.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
