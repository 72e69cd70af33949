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

    /// <summary>
    /// Waldur staff move the order to executing (<c>set_state_executing</c>), as they do to retry an erred order: the emulator's
    /// route answers it, in process, as staff's call is not the adapter's (it is not in the adapter's request log nor checked
    /// against the operations the adapter may send). Fails the test when Waldur refuses.
    /// </summary>
    public async Task StaffSetsOrderExecutingAsync(Guid order)
    {
        var path = $"/api/marketplace-orders/{order}/set_state_executing/";
        var response = await HandleAsync(new EmulatorMessage
        {
            Method = "POST",
            Path = path,
            PathAndQuery = path,
            Query = new Dictionary<string, string[]>(),
            Headers = new Dictionary<string, string[]>(StringComparer.OrdinalIgnoreCase) { ["Authorization"] = ["Token " + Token] },
        });
        if (response.Status != 200)
        {
            throw new InvalidOperationException($"Waldur refused set_state_executing of order {order}: {response.Status} {response.Body}");
        }
    }

    public void Dispose() => Upstream.Dispose();
}
