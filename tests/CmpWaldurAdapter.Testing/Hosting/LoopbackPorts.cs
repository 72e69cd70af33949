using System.Net;
using System.Net.Sockets;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>Ports for processes the tests start on loopback.</summary>
public static class LoopbackPorts
{
    /// <summary>A loopback port free right now (the system's choice for a listener, closed again at once).</summary>
    public static int Free()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
