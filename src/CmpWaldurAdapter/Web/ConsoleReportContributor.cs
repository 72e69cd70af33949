using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>What a console link replacement came to; anything but <see cref="LinkReplacementOutcome.Replaced"/> changed nothing.</summary>
/// <param name="Failure">Waldur's answer when it did not take the report (for operators and logs, not buyers).</param>
public sealed record LinkReplacement(LinkReplacementOutcome Outcome, int Version = 0, string? Failure = null)
{
    /// <summary>Why nothing was replaced, in words for the buyer and the operator alike.</summary>
    public string Reason => Outcome switch
    {
        LinkReplacementOutcome.NotActive => "the agent is not active (it is being set up or closed)",
        LinkReplacementOutcome.Busy => "the agent's HomePort report is being updated right now",
        LinkReplacementOutcome.WaldurFailed => "HomePort could not be reached",
        _ => string.Empty,
    };
}

public enum LinkReplacementOutcome
{
    Replaced,

    /// <summary>Only an active subscription's link is replaced (one being provisioned or closed has none to replace).</summary>
    NotActive,

    /// <summary>Another writer of the resource's report (an order, a renewal) is at work; try again in a moment.</summary>
    Busy,

    /// <summary>Waldur did not take the report (down, or refusing it).</summary>
    WaldurFailed,
}

/// <summary>
/// Puts the buyer console link in the Waldur resource report, where the project's members see it in HomePort.
/// The link is signed and expires; it is not a key (it opens the console only).
/// </summary>
public sealed class ConsoleReportContributor(
    ConsoleAccess console,
    IWaldurApi waldur,
    ReportLease lease,
    IDbContextFactory<AdapterDbContext> dbs,
    IOptions<WebOptions> options,
    TimeProvider clock,
    ILogger<ConsoleReportContributor> logger) : IReportContributor
{
    public const string Header = "Buyer console";

    /// <summary>The notice a replacement puts first in the report.</summary>
    public const string ReplacedHeader = "Console link replaced";

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
            await console.RenewLinkAtAsync(subscription.Id, RenewalOf(clock.GetUtcNow()), cancellationToken);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            // The order is done either way; the renewal then goes by the link recorded before (renewed early at worst).
            logger.LogWarning(exception, "Could not record when the console link of subscription {SubscriptionId} is to be renewed", subscription.Id);
        }
    }

    /// <summary>
    /// Replaces the link: the report with the new one is sent first, then the new version is put in force, so the old
    /// links stop working only once HomePort shows the new one. The report keeps its other sections and gains a notice.
    /// When Waldur cannot take it, the links in force stay; the link is marked for renewal before the report is sent,
    /// so should Waldur have taken it after all (a timeout, a crash before the version is put in force), the next
    /// renewal run puts a link of the version in force there. Busy while another writer holds the report; not active
    /// when the subscription is not, once the report is free (a Terminate order may have gone first).
    /// </summary>
    public async Task<LinkReplacement> RotateAsync(Subscription subscription, CancellationToken cancellationToken)
    {
        if (await lease.TryTakeAsync(subscription.ResourceUuid, ReportLease.OrderWait, cancellationToken) is not { } holding)
        {
            return new LinkReplacement(LinkReplacementOutcome.Busy);
        }

        try
        {
            if (!await IsActiveAsync(subscription.Id, cancellationToken))
            {
                return new LinkReplacement(LinkReplacementOutcome.NotActive);
            }

            var (link, version) = await console.NextLinkAsync(subscription.Id, cancellationToken);
            var resource = await waldur.GetProviderResourceAsync(subscription.ResourceUuid, cancellationToken);
            var notice = new ReportSectionRequest { Header = ReplacedHeader, Body = "The buyer console link was replaced; earlier links no longer open it." };
            await console.RenewLinkAtAsync(subscription.Id, clock.GetUtcNow(), cancellationToken); // until the version is in force
            await waldur.SubmitResourceReportAsync(subscription.ResourceUuid, new ResourceReportRequest { Report = WithSection(resource.Report, Section(link), notice) }, cancellationToken);
            // Waldur shows the new link now: it is put in force even if the caller has left meanwhile.
            await console.AdoptAsync(subscription.Id, version, RenewalOf(clock.GetUtcNow()), CancellationToken.None);
            return new LinkReplacement(LinkReplacementOutcome.Replaced, version);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested && (UpstreamFailures.IsTransient(exception) || exception is Refit.ApiException))
        {
            var failure = UpstreamFailures.Describe(exception);
            logger.LogWarning("Console link of subscription {SubscriptionId} not replaced: Waldur did not take the report ({Failure})", subscription.Id, failure);
            return new LinkReplacement(LinkReplacementOutcome.WaldurFailed, Failure: failure);
        }
        finally
        {
            await lease.ReleaseAsync(subscription.ResourceUuid, holding);
        }
    }

    /// <summary>
    /// Puts a fresh link of the version in force in the resource's report in place of its console section (or after
    /// the others when it has none); every other section stays as Waldur holds it. Older links keep working until they
    /// expire. False (nothing sent) when the subscription is no longer active. The caller holds the report's lease
    /// (<see cref="ReportLease"/>).
    /// </summary>
    public async Task<bool> RenewAsync(Guid subscriptionId, Guid resourceUuid, CancellationToken cancellationToken)
    {
        // Chosen from a list read before the lease: a Terminate order may have written its report (no link) since.
        if (!await IsActiveAsync(subscriptionId, cancellationToken))
        {
            return false;
        }

        var issuedAt = clock.GetUtcNow();
        var resource = await waldur.GetProviderResourceAsync(resourceUuid, cancellationToken);
        var fresh = await SectionAsync(subscriptionId, cancellationToken);
        await waldur.SubmitResourceReportAsync(resourceUuid, new ResourceReportRequest { Report = WithSection(resource.Report, fresh, null) }, cancellationToken);
        await console.RenewLinkAtAsync(subscriptionId, RenewalOf(issuedAt), CancellationToken.None);
        return true;
    }

    /// <summary>
    /// The report's sections with <paramref name="console"/> in place of its console section (or last when it has none)
    /// and without an earlier replacement notice (after a renewal it may not hold: a replacement that was not put in
    /// force is repaired by a renewal); with <paramref name="notice"/>, that notice first.
    /// </summary>
    private static List<ReportSectionRequest> WithSection(IEnumerable<ReportSection>? report, ReportSectionRequest console, ReportSectionRequest? notice)
    {
        var sections = (report ?? [])
            .Where(s => s.Header != ReplacedHeader)
            .Select(s => s.Header == Header ? console : new ReportSectionRequest { Header = s.Header ?? string.Empty, Body = s.Body ?? string.Empty })
            .ToList();
        if (!sections.Contains(console))
        {
            sections.Add(console);
        }

        if (notice is not null)
        {
            sections.Insert(0, notice);
        }

        return sections;
    }

    private async Task<bool> IsActiveAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.Subscriptions.AnyAsync(s => s.Id == subscriptionId && s.State == Core.Subscriptions.SubscriptionState.Active, cancellationToken);
    }

    /// <summary>When a link made at <paramref name="issuedAt"/> is due for renewal.</summary>
    private DateTimeOffset RenewalOf(DateTimeOffset issuedAt) => issuedAt + options.Value.ConsoleLinkRenewalAge;

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
