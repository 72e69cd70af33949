using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;

namespace CmpWaldurAdapter.Reports;

/// <summary>
/// Adds sections to the report Waldur shows the buyer on the resource page (console link, endpoint,
/// how to get a key). Everything here is readable by all project members: never put a secret in it.
/// </summary>
public interface IReportContributor
{
    Task<IEnumerable<ReportSectionRequest>> ContributeAsync(Subscription subscription, OrderRecord order, CancellationToken cancellationToken);

    /// <summary>Called once Waldur holds the report with what <see cref="ContributeAsync"/> gave.</summary>
    Task SubmittedAsync(Subscription subscription, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Builds and submits the resource report at the end of every order, holding the <see cref="ReportLease"/>.</summary>
public sealed class SubscriptionReporter(IWaldurApi waldur, IEnumerable<IReportContributor> contributors, ReportLease lease)
{
    public async Task SubmitAsync(Subscription subscription, OrderRecord order, string offeringName, CancellationToken cancellationToken)
    {
        if (await lease.TryTakeAsync(subscription.ResourceUuid, ReportLease.OrderWait, cancellationToken) is not { } holding)
        {
            throw new TransientProvisioningException("The resource's report is being written by another task; the order retries.");
        }

        try
        {
            var sections = new List<ReportSectionRequest> { Summary(subscription, order, offeringName) };
            foreach (var contributor in contributors)
            {
                sections.AddRange(await contributor.ContributeAsync(subscription, order, cancellationToken));
            }

            await waldur.SubmitResourceReportAsync(subscription.ResourceUuid, new ResourceReportRequest { Report = sections }, cancellationToken);
            foreach (var contributor in contributors)
            {
                await contributor.SubmittedAsync(subscription, CancellationToken.None);
            }
        }
        finally
        {
            await lease.ReleaseAsync(subscription.ResourceUuid, holding);
        }
    }

    internal static ReportSectionRequest Summary(Subscription subscription, OrderRecord order, string offeringName)
    {
        var notes = order.Notes.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var (header, lead) = order.Type switch
        {
            OrderType.Terminate => ("Subscription closed", $"{offeringName} was unsubscribed. What was removed:"),
            OrderType.Update => ("Settings updated", $"{offeringName} now runs with your new settings."),
            OrderType.Create or OrderType.Restore => ("Your agent is ready", $"{offeringName} is provisioned and ready to use."),
            _ => throw new ArgumentOutOfRangeException(nameof(order), order.Type, "Unknown order type."),
        };
        var lines = new List<string> { lead };
        lines.AddRange(notes.Select(n => "- " + n));
        lines.Add($"Subscription id: {subscription.Id}");
        return new ReportSectionRequest { Header = header, Body = string.Join('\n', lines) };
    }
}
