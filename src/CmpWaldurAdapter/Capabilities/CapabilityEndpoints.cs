using CmpWaldurAdapter.Capabilities.Automations;
using CmpWaldurAdapter.Capabilities.Handoff;

namespace CmpWaldurAdapter.Capabilities;

public static class CapabilityEndpoints
{
    /// <summary>The endpoints of the capabilities beyond chat.</summary>
    public static void MapCapabilityEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapHandoffEndpoints();
        endpoints.MapAutomationEndpoints();
        endpoints.MapMediaEndpoints();
    }
}
