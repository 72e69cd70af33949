using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>
/// Puts the buyer console link in the Waldur resource report, where the project's members see it in HomePort.
/// The link is signed and expires; it is not a key (it opens the console only).
/// </summary>
public sealed class ConsoleReportContributor(ConsoleAccess console, IWaldurApi waldur, IOptions<WebOptions> options, TimeProvider clock) : IReportContributor
{
    public const string Header = "Buyer console";

    public async Task<IEnumerable<ReportSectionRequest>> ContributeAsync(Subscription subscription, OrderRecord order, CancellationToken cancellationToken)
    {
        if (order.Type == OrderType.Terminate)
        {
            return [];
        }

        var section = await SectionAsync(subscription.Id, cancellationToken);
        await console.RecordIssuedAsync(subscription.Id, clock.GetUtcNow(), cancellationToken);
        return [section];
    }

    /// <summary>
    /// Replaces the link: the report with the new one is sent first, then the new version is put in force, so the old
    /// links stop working only once HomePort shows the new one. When Waldur cannot take the report, this throws and
    /// nothing changed. Returns the version now in force.
    /// </summary>
    public async Task<int> RotateAsync(Subscription subscription, CancellationToken cancellationToken)
    {
        var (link, version) = await console.NextLinkAsync(subscription.Id, cancellationToken);
        var notice = new ReportSectionRequest { Header = "Console link replaced", Body = "The buyer console link was replaced; earlier links no longer open it." };
        await waldur.SubmitResourceReportAsync(subscription.ResourceUuid, new ResourceReportRequest { Report = [notice, Section(link)] }, cancellationToken);
        await console.AdoptAsync(subscription.Id, version, clock.GetUtcNow(), cancellationToken);
        return version;
    }

    /// <summary>
    /// Puts a fresh link of the same version in the resource's report in place of its console section (or after the
    /// others when it has none); every other section stays as Waldur holds it. Older links keep working until they expire.
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
        await console.RecordIssuedAsync(subscriptionId, issuedAt, cancellationToken);
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
