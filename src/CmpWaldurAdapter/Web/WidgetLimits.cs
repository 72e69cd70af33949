using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web;

/// <summary>Which widget limit refused a message.</summary>
public enum WidgetLimit
{
    /// <summary><see cref="WebOptions.WidgetMessagesPerMinute"/>: one visitor's burst.</summary>
    MessagesPerVisitor,

    /// <summary>
    /// <see cref="WebOptions.WidgetMessagesPerAddressPerMinute"/> or <see cref="WebOptions.WidgetMessagesPerAddressPerDay"/>,
    /// or the IPv6 /48's multiple of either (<see cref="WebOptions.TryIpv6SiteMultiple"/>).
    /// </summary>
    MessagesPerAddress,

    /// <summary>The buyer's <see cref="BuyerWebSettings.WidgetDailyMessageCap"/>.</summary>
    DailyCap,
}

/// <summary>
/// The widget's limits that a publishable key cannot escape by minting visitor tokens: sessions and messages per
/// subscription per client address (messages per minute and per day, so one address cannot use up the day), the same
/// per IPv6 /48 site at <see cref="WebOptions.TryIpv6SiteMultiple"/> times the address's (an IPv6 address counts as its
/// /64, and a /48 holds 65,536 of them), and the buyer's daily message cap per subscription. They guard the
/// organization's shared credits, so they are database <see cref="AllowanceCounters"/> (fixed clock windows) and
/// hold across replicas. The per-visitor burst limit comes on top, counted with them so that it holds across replicas too.
/// </summary>
public sealed class WidgetLimits(AllowanceCounters counters, IOptions<WebOptions> options)
{
    /// <summary>
    /// Takes one session of the address's hour and of its IPv6 /48's (<paramref name="site"/>: <see cref="ClientAddress.Site"/>,
    /// null for IPv4); how long until the next one when none is left.
    /// </summary>
    public async Task<TimeSpan?> TakeSessionAsync(Guid subscriptionId, string address, string? site, CancellationToken cancellationToken)
    {
        AllowanceRule[] rules = site is null
            ? [SessionRule(subscriptionId, address)]
            : [SessionRule(subscriptionId, address), SiteSessionRule(subscriptionId, site)];
        return (await counters.TakeAsync(rules, cancellationToken))?.RetryAfter;
    }

    /// <summary>
    /// Takes one message of the address's day and minute (and of its IPv6 /48's: <paramref name="site"/>, null for
    /// IPv4), one of the visitor's minute and one of the subscription's day, all or none, counted at
    /// <paramref name="now"/> (one round trip). The day is counted without a cap too, so a cap set at noon counts the
    /// morning's messages.
    /// </summary>
    public async Task<(WidgetLimit Limit, TimeSpan RetryAfter)?> TakeMessageAsync(Guid subscriptionId, string address, string? site, string visitor, int? dailyCap, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // When several are full the first is told. The address's and the /48's days come first: their Retry-After
        // (midnight) is the one worth telling. Then the visitor's minute, the sender's own burst, before the minutes it
        // shares with its network (the address's, then the /48's: told alike).
        var settings = options.Value;
        var visitorMinute = new AllowanceRule(AllowanceCounters.Key($"widget-visitor|{subscriptionId:N}|{visitor}"), settings.WidgetMessagesPerMinute, TimeSpan.FromMinutes(1), Fixed: true);
        var addressMinute = new AllowanceRule(AllowanceCounters.Key($"widget-address|{subscriptionId:N}|{address}"), settings.WidgetMessagesPerAddressPerMinute, TimeSpan.FromMinutes(1), Fixed: true);
        var day = DayRule(subscriptionId, dailyCap);
        AllowanceRule[] rules = site is null
            ? [AddressDayRule(subscriptionId, address), visitorMinute, addressMinute, day]
            :
            [
                AddressDayRule(subscriptionId, address), SiteDayRule(subscriptionId, site), visitorMinute, addressMinute,
                new(AllowanceCounters.Key($"widget-site|{subscriptionId:N}|{site}"), settings.WidgetMessagesPerIpv6SitePerMinute, TimeSpan.FromMinutes(1), Fixed: true),
                day,
            ];
        return await counters.TakeAsync(rules, now, cancellationToken) is { } refusal
            ? (refusal.Rule == day ? WidgetLimit.DailyCap : refusal.Rule == visitorMinute ? WidgetLimit.MessagesPerVisitor : WidgetLimit.MessagesPerAddress, refusal.RetryAfter)
            : null;
    }

    /// <summary>
    /// A message that was not answered (nothing charged) counts against neither the buyer's daily cap nor the
    /// address's day nor its /48's, unless the day it was counted in has ended; <paramref name="takenAt"/>: the instant
    /// it was taken at. Its minutes (the address's, the /48's and the visitor's) stay taken, so retries during an outage
    /// still pace themselves.
    /// </summary>
    public Task GiveBackDailyAsync(Guid subscriptionId, string address, string? site, DateTimeOffset takenAt) =>
        counters.GiveBackAsync(
            site is null
                ? [AddressDayRule(subscriptionId, address).Key, DayRule(subscriptionId, null).Key]
                : [AddressDayRule(subscriptionId, address).Key, SiteDayRule(subscriptionId, site).Key, DayRule(subscriptionId, null).Key],
            takenAt);

    /// <summary>Widget messages of the subscription today (UTC), for the console.</summary>
    public async Task<int> MessagesTodayAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        var rule = DayRule(subscriptionId, null);
        return (await counters.UsedAsync([rule], cancellationToken))[rule.Key];
    }

    private AllowanceRule SessionRule(Guid subscriptionId, string address) =>
        new(AllowanceCounters.Key($"widget-session|{subscriptionId:N}|{address}"), options.Value.WidgetSessionsPerAddressPerHour, TimeSpan.FromHours(1), Fixed: true);

    private AllowanceRule SiteSessionRule(Guid subscriptionId, string site) =>
        new(AllowanceCounters.Key($"widget-session-site|{subscriptionId:N}|{site}"), options.Value.WidgetSessionsPerIpv6SitePerHour, TimeSpan.FromHours(1), Fixed: true);

    private AllowanceRule AddressDayRule(Guid subscriptionId, string address) =>
        new(AllowanceCounters.Key($"widget-address-day|{subscriptionId:N}|{address}"), options.Value.WidgetMessagesPerAddressPerDay, TimeSpan.FromDays(1), Fixed: true);

    private AllowanceRule SiteDayRule(Guid subscriptionId, string site) =>
        new(AllowanceCounters.Key($"widget-site-day|{subscriptionId:N}|{site}"), options.Value.WidgetMessagesPerIpv6SitePerDay, TimeSpan.FromDays(1), Fixed: true);

    private static AllowanceRule DayRule(Guid subscriptionId, int? cap) => new($"widget-day|{subscriptionId:N}", cap ?? int.MaxValue, TimeSpan.FromDays(1), Fixed: true);
}
