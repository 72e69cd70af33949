using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>Another writer of the resource's report (an order, a renewal) is at work; try again in a moment.</summary>
public sealed class ReportBusyException() : Exception("The resource's report is being written by another task.");

/// <summary>
/// Puts the buyer console link in the Waldur resource report, where the project's members see it in HomePort.
/// The link is signed and expires; it is not a key (it opens the console only).
/// </summary>
public sealed class ConsoleReportContributor(
    ConsoleAccess console,
    IWaldurApi waldur,
    DatabaseLeases leases,
    IOptions<WebOptions> options,
    TimeProvider clock,
    ILogger<ConsoleReportContributor> logger) : IReportContributor
{
    public const string Header = "Buyer console";

    public async Task<IEnumerable<ReportSectionRequest>> ContributeAsync(Subscription subscription, OrderRecord order, CancellationToken cancellationToken) =>
        order.Type == OrderType.Terminate ? [] : [await SectionAsync(subscription.Id, cancellationToken)];

    /// <summary>The order's report with a fresh link is in Waldur: its renewal is due a renewal period from now.</summary>
    public async Task SubmittedAsync(Subscription subscription, CancellationToken cancellationToken)
    {
        if (subscription.State is Core.Subscriptions.SubscriptionState.Terminating or Core.Subscriptions.SubscriptionState.Terminated)
        {
            return;
        }

        try
        {
            await console.RecordIssuedAsync(subscription.Id, clock.GetUtcNow(), cancellationToken);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            // The order is done either way; the renewal then goes by the link recorded before (renewed early at worst).
            logger.LogWarning(exception, "Could not record when the console link of subscription {SubscriptionId} was issued", subscription.Id);
        }
    }

    /// <summary>
    /// Replaces the link: the report with the new one is sent first, then the new version is put in force, so the old
    /// links stop working only once HomePort shows the new one. When Waldur cannot take the report, this throws and the
    /// links in force stay; should Waldur have taken it after all (a timeout), the next renewal run puts a link of the
    /// version in force back. Throws <see cref="ReportBusyException"/> while another writer holds the report. Returns
    /// the version now in force.
    /// </summary>
    public async Task<int> RotateAsync(Subscription subscription, CancellationToken cancellationToken)
    {
        var lease = SubscriptionReporter.LeaseName(subscription.ResourceUuid);
        if (!await leases.TryAcquireWaitingAsync(lease, SubscriptionReporter.LeaseDuration, SubscriptionReporter.LeaseWait, cancellationToken))
        {
            throw new ReportBusyException();
        }

        try
        {
            var (link, version) = await console.NextLinkAsync(subscription.Id, cancellationToken);
            var notice = new ReportSectionRequest { Header = "Console link replaced", Body = "The buyer console link was replaced; earlier links no longer open it." };
            try
            {
                await waldur.SubmitResourceReportAsync(subscription.ResourceUuid, new ResourceReportRequest { Report = [notice, Section(link)] }, cancellationToken);
            }
            catch (Exception exception) when (UpstreamFailures.IsTransient(exception))
            {
                await console.MarkRenewalDueAsync(subscription.Id, CancellationToken.None);
                throw;
            }

            // Waldur shows the new link now: it is put in force even if the buyer has left meanwhile.
            await console.AdoptAsync(subscription.Id, version, clock.GetUtcNow(), CancellationToken.None);
            return version;
        }
        finally
        {
            await leases.ReleaseAsync(lease);
        }
    }

    /// <summary>
    /// Puts a fresh link of the version in force in the resource's report in place of its console section (or after
    /// the others when it has none); every other section stays as Waldur holds it. Older links keep working until they
    /// expire. The caller holds the report's lease (<see cref="SubscriptionReporter.LeaseName"/>).
    /// </summary>
    public async Task RenewAsync(Guid subscriptionId, Guid resourceUuid, CancellationToken cancellationToken)
    {
        var issuedAt = clock.GetUtcNow();
        var resource = await waldur.GetProviderResourceAsync(resourceUuid, cancellationToken);
        var fresh = await SectionAsync(subscriptionId, cancellationToken);
        var sections = (resource.Report ?? [])
            .Select(s => s.Header == Header ? fresh : new ReportSectionRequest { Header = s.Header ?? string.Empty, Body = s.Body ?? string.Empty })
            .ToList();
        if (!sections.Contains(fresh))
        {
            sections.Add(fresh);
        }

        await waldur.SubmitResourceReportAsync(resourceUuid, new ResourceReportRequest { Report = sections }, cancellationToken);
        await console.RecordIssuedAsync(subscriptionId, issuedAt, CancellationToken.None);
    }

    private async Task<ReportSectionRequest> SectionAsync(Guid subscriptionId, CancellationToken cancellationToken) =>
        Section(await console.CreateLinkAsync(subscriptionId, cancellationToken));

    private ReportSectionRequest Section(Uri link)
    {
        var days = (int)Math.Ceiling(options.Value.ConsoleLinkLifetime.TotalDays);
        return new ReportSectionRequest
        {
            Header = Header,
            Body = $"Configure your agent, manage API keys and the website widget, see usage and chat with it:\n{link}\n"
                + $"The link works for {days} days for members of this project. Ask the provider to replace it if it was shared by mistake.",
        };
    }
}
