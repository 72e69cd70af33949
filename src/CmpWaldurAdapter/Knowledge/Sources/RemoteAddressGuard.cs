using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Knowledge.Sources;

/// <summary>
/// The SSRF guard for hosts a buyer chooses (URLs, Confluence sites, webhook receivers): checks scheme and address
/// before a request, and connects only to the addresses it checked, so DNS rebinding cannot swap them.
/// </summary>
/// <param name="allowLoopback">Whether this machine's own addresses pass (development and tests only).</param>
internal sealed class RemoteAddressGuard(IHostAddressResolver resolver, Func<bool> allowLoopback)
{
    public RemoteAddressGuard(IHostAddressResolver resolver, IOptionsMonitor<UrlSourceOptions> options)
        : this(resolver, () => options.CurrentValue.AllowLoopback)
    {
    }

    /// <summary>The checked addresses of a request's host, read back by the connect callback.</summary>
    internal static readonly HttpRequestOptionsKey<PinnedHost> PinnedKey = new("CmpWaldurAdapter.Knowledge.PinnedHost");

    public bool AllowLoopback => allowLoopback();

    /// <summary>Parses a buyer's URL: absolute http(s), a host, no user info.</summary>
    public static Uri ParseUrl(string url, SourceKind kind)
    {
        if (string.IsNullOrWhiteSpace(url) || !Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri))
        {
            throw new SourceRejectedException(kind, "The address is not a valid absolute http or https URL.");
        }

        Validate(uri, kind);
        return uri;
    }

    public static void Validate(Uri uri, SourceKind kind)
    {
        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
        {
            throw new SourceRejectedException(kind, $"Only http and https addresses can be read, not {uri.Scheme}:.");
        }

        if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            throw new SourceRejectedException(kind, "Addresses with a user name or password in them are not accepted.");
        }

        if (string.IsNullOrEmpty(uri.Host))
        {
            throw new SourceRejectedException(kind, "The address has no host.");
        }
    }

    /// <summary>Resolves the URL's host and refuses it unless every address is allowed; returns them to pin.</summary>
    public async Task<IPAddress[]> CheckAsync(Uri uri, SourceKind kind, CancellationToken cancellationToken)
    {
        Validate(uri, kind);
        return await CheckHostAsync(uri.IdnHost, kind, cancellationToken);
    }

    /// <summary>Pins the checked addresses on the request for <see cref="ConnectAsync"/>.</summary>
    public static void Pin(HttpRequestMessage request, Uri uri, IPAddress[] addresses, SourceKind kind) =>
        request.Options.Set(PinnedKey, new PinnedHost(uri.IdnHost, addresses, kind));

    private async Task<IPAddress[]> CheckHostAsync(string host, SourceKind kind, CancellationToken cancellationToken)
    {
        var bare = host.Trim('[', ']');
        IPAddress[] addresses;
        if (AddressClassifier.TryParseNumericIPv4(bare, out var numeric))
        {
            addresses = [numeric!];
        }
        else if (IPAddress.TryParse(bare, out var literal))
        {
            addresses = [literal];
        }
        else if (AddressClassifier.LooksNumeric(bare))
        {
            throw new SourceRejectedException(kind, "The address's host is a malformed number.");
        }
        else
        {
            addresses = await ResolveAsync(bare, kind, cancellationToken);
        }

        // Every address must pass: a name that also resolves inward is refused outright.
        foreach (var address in addresses)
        {
            if (!AddressClassifier.IsAllowed(address, AllowLoopback))
            {
                throw new SourceRejectedException(kind, $"{host} points to a {Describe(AddressClassifier.Classify(address))} address; only public internet addresses can be read.");
            }
        }

        return addresses;
    }

    private async Task<IPAddress[]> ResolveAsync(string host, SourceKind kind, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        try
        {
            addresses = await resolver.ResolveAsync(host, cancellationToken);
        }
        catch (SocketException exception) when (exception.SocketErrorCode is SocketError.HostNotFound or SocketError.NoData)
        {
            throw new SourceNotFoundException(kind, $"The host {host} does not exist.", host, exception);
        }
        catch (SocketException exception)
        {
            throw new SourceUnavailableException(kind, $"The host {host} could not be resolved right now.", exception);
        }

        return addresses.Length == 0
            ? throw new SourceNotFoundException(kind, $"The host {host} has no addresses.", host)
            : addresses;
    }

    private static string Describe(AddressRange range) => range switch
    {
        AddressRange.Loopback => "loopback (this machine)",
        AddressRange.Private => "private network",
        AddressRange.LinkLocal => "link-local (cloud metadata)",
        AddressRange.CarrierGradeNat => "carrier-grade NAT",
        AddressRange.Unspecified => "unspecified",
        AddressRange.Multicast => "multicast",
        AddressRange.Broadcast => "broadcast",
        AddressRange.Reserved => "reserved",
        AddressRange.Public => "public",
        _ => "non-public",
    };

    /// <summary>The primary handler: no proxy (it would hide the real target), no automatic redirects, our connect.</summary>
    public SocketsHttpHandler CreateHandler() => new()
    {
        AllowAutoRedirect = false,
        UseProxy = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.All,
        ConnectCallback = ConnectAsync,
        PooledConnectionLifetime = TimeSpan.FromMinutes(2),
    };

    /// <summary>Connects to the pinned addresses, or checks the host afresh when nothing was pinned for it.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var endpoint = context.DnsEndPoint;
        var pinned = context.InitialRequestMessage.Options.TryGetValue(PinnedKey, out var pin) ? pin : null;
        var kind = pinned?.Kind ?? SourceKind.Url;
        var addresses = pinned is not null && string.Equals(pinned.Host, endpoint.Host, StringComparison.OrdinalIgnoreCase)
            ? pinned.Addresses
            : await CheckHostAsync(endpoint.Host, kind, cancellationToken);

        foreach (var address in addresses)
        {
            if (!AddressClassifier.IsAllowed(address, AllowLoopback))
            {
                throw new SourceRejectedException(kind, "Refused to connect to a non-public address.");
            }
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(addresses, endpoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    internal sealed record PinnedHost(string Host, IPAddress[] Addresses, SourceKind Kind);
}
