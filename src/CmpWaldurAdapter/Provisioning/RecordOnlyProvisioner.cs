using CmpWaldurAdapter.Core.Orders;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// Provisions nothing upstream: the order pipeline's own steps keep the subscription record, and this
/// adds none. Used when no agent runtime is configured (the pipeline's own tests, dry runs).
/// </summary>
public sealed class RecordOnlyProvisioner : ITenantProvisioner
{
    public IReadOnlyList<ProvisioningStep> StepsFor(OrderType type) => [];
}
