using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>The Waldur emulator served through WireMock, so tests inject faults and check every request against the pinned spec.</summary>
public sealed class WaldurFake : WaldurEmulator, IFakeUpstream, IDisposable
{
    public WaldurFake()
    {
        Upstream = new FakeUpstream(this);
        Url = Upstream.Url;
    }

    public FakeUpstream Upstream { get; }

    /// <summary>Fails the test if any request the adapter sent is not allowed by the pinned Waldur spec.</summary>
    public void AssertRequestsConformToSpec() => Upstream.Server.AssertRequestsConform(UpstreamSpecs.Waldur.WithAuthEnforced());

    public void Dispose() => Upstream.Dispose();
}
