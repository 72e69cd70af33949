using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>Which try allowance refused a demo message.</summary>
public enum TryLimit
{
    /// <summary>The visitor's, its address's or its IPv6 /48's allowance: this visitor has had its demo.</summary>
    Visitor,

    /// <summary><see cref="WebOptions.TryMessagesPerOfferingPerDay"/>: the offering's demo has had all its messages today.</summary>
    OfferingDay,
}

/// <summary>
/// The try page's allowance per offering: <see cref="WebOptions.TryMessagesPerVisitor"/> per visitor (a signed
/// cookie), <see cref="WebOptions.TryMessagesPerAddress"/> per client address (<see cref="ClientAddress"/>) and a
/// multiple of it per IPv6 /48 (<see cref="WebOptions.TryIpv6SiteMultiple"/>) within <see cref="WebOptions.TryWindow"/>,
/// and <see cref="WebOptions.TryMessagesPerOfferingPerDay"/> for all visitors together. The counts are promises to
/// visitors, so they are database <see cref="AllowanceCounters"/> and hold across replicas and restarts.
/// </summary>
public sealed class TryLimiter(AllowanceCounters counters, IOptions<WebOptions> options)
{
    /// <summary>
    /// Takes one message, counted at <paramref name="now"/>; the refusing limit when the offering, the network, the
    /// address or the visitor has none left (then nothing is written). The result says what is left after it.
    /// </summary>
    public async Task<(TryLimit? Refused, int Remaining)> TryTakeAsync(string offering, string visitor, string address, string? site, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var rules = Rules(offering, visitor, address, site);
        if (await counters.TakeAsync(rules, now, cancellationToken) is { } refusal)
        {
            return (refusal.Rule == rules[0] ? TryLimit.OfferingDay : TryLimit.Visitor, 0);
        }

        return (null, await RemainingAsync(rules, cancellationToken));
    }

    /// <summary>Gives a message back (the demo agent failed to answer: a failure costs no allowance); <paramref name="takenAt"/>: the instant it was taken at.</summary>
    public Task GiveBackAsync(string offering, string visitor, string address, string? site, DateTimeOffset takenAt) =>
        counters.GiveBackAsync(Rules(offering, visitor, address, site).Select(r => r.Key), takenAt);

    public Task<int> RemainingAsync(string offering, string visitor, string address, string? site, CancellationToken cancellationToken) =>
        RemainingAsync(Rules(offering, visitor, address, site), cancellationToken);

    private async Task<int> RemainingAsync(AllowanceRule[] rules, CancellationToken cancellationToken)
    {
        var used = await counters.UsedAsync(rules, cancellationToken);
        return Math.Max(0, rules.Min(r => r.Limit - used[r.Key]));
    }

    /// <summary>
    /// The offering's day first (<see cref="TryTakeAsync"/> tells it by its place), and the keys a client can vary
    /// at will (a new /64, a new visitor without the cookie) after the ones it cannot, so a refusal writes no counter
    /// for them.
    /// </summary>
    private AllowanceRule[] Rules(string offering, string visitor, string address, string? site)
    {
        var settings = options.Value;
        var day = new AllowanceRule(AllowanceCounters.Key($"try-day|{offering}"), settings.TryMessagesPerOfferingPerDay, TimeSpan.FromDays(1), Fixed: true);
        var perAddress = new AllowanceRule(AllowanceCounters.Key($"address|{offering}|{address}"), settings.TryMessagesPerAddress, settings.TryWindow);
        var perVisitor = new AllowanceRule(AllowanceCounters.Key($"visitor|{offering}|{visitor}"), settings.TryMessagesPerVisitor, settings.TryWindow);
        return site is null
            ? [day, perAddress, perVisitor]
            : [day, new(AllowanceCounters.Key($"site|{offering}|{site}"), settings.TryMessagesPerIpv6Site, settings.TryWindow), perAddress, perVisitor];
    }
}
