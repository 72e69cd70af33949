using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur.Contracts;

namespace CmpWaldurAdapter.Provisioning;

/// <summary>
/// The provisioning seam: the steps that build, change or remove a subscription's tenant. The order
/// pipeline runs them in order and persists each completion, so a step runs again only if the process
/// died before its completion was saved; steps must therefore be idempotent (look before creating).
/// </summary>
public interface ITenantProvisioner
{
    IReadOnlyList<ProvisioningStep> StepsFor(OrderType type);
}

/// <summary>One named, idempotent unit of provisioning work.</summary>
public sealed record ProvisioningStep(string Name, Func<ProvisioningContext, CancellationToken, Task> ExecuteAsync);

/// <summary>What a step works with. Changes to tracked entities are saved by the pipeline after each step.</summary>
public sealed class ProvisioningContext
{
    public required AdapterDbContext Db { get; init; }

    public required OrderDetails Order { get; init; }

    public required Subscription Subscription { get; init; }

    public required Workspace Workspace { get; init; }

    /// <summary>The validated configuration this order asks for.</summary>
    public required JsonObject Configuration { get; init; }

    /// <summary>Lines for the buyer-facing report; persisted with the order so a resumed order reports them too.</summary>
    public required IList<string> Notes { get; init; }

    public void Note(string line)
    {
        if (!Notes.Contains(line))
        {
            Notes.Add(line);
        }
    }
}

/// <summary>A provisioning failure that will not heal by retrying (bad template, rejected by upstream).</summary>
public sealed class PermanentProvisioningException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A provisioning failure worth retrying later (upstream down, rate limited, timed out).</summary>
public sealed class TransientProvisioningException(string message, Exception? inner = null) : Exception(message, inner);
