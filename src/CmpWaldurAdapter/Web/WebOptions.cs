using System.ComponentModel.DataAnnotations;
using CmpWaldurAdapter.Configuration;

namespace CmpWaldurAdapter.Web;

/// <summary>How buyers reach the adapter's pages and API (configuration section <c>Web</c>).</summary>
public sealed class WebOptions : IValidatableObject
{
    public const string SectionName = "Web";

    /// <summary>The adapter's public address, used in links it hands out (try pages, console, API endpoint).</summary>
    [AbsoluteUri]
    public Uri PublicBaseUrl { get; set; } = new("http://localhost:5000/");

    /// <summary>Waldur HomePort's address, for "Subscribe" links to an offering's order page.</summary>
    [AbsoluteUri]
    public Uri? HomePortUrl { get; set; }

    /// <summary>HomePort's path of an offering's order page; <c>{uuid}</c> is the Waldur offering UUID.</summary>
    public string HomePortOfferingPath { get; set; } = "marketplace-offering/{uuid}/";

    /// <summary>How long a console link in the Waldur resource report opens the console.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan ConsoleLinkLifetime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>
    /// A console link this close to its expiry is replaced in the Waldur report by a fresh one of the same version (the
    /// old one keeps working until it expires), so HomePort never shows a dead link. At most half the lifetime.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan ConsoleLinkRenewBefore { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How old a console link is when it is renewed (<see cref="ConsoleLinkRenewBefore"/>, at most half the lifetime, before it expires).</summary>
    internal TimeSpan ConsoleLinkRenewalAge =>
        ConsoleLinkLifetime - TimeSpan.FromTicks(Math.Min(ConsoleLinkRenewBefore.Ticks, ConsoleLinkLifetime.Ticks / 2));

    /// <summary>How often the links due for renewal are looked for.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "1.00:00:00")]
    public TimeSpan ConsoleLinkRenewalInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long a console session (the cookie a link sets) lasts.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan ConsoleSessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Demo messages per visitor and offering on the try page.</summary>
    [Range(1, int.MaxValue)]
    public int TryMessagesPerVisitor { get; set; } = 5;

    /// <summary>Demo messages per network address and offering within <see cref="TryWindow"/>: clearing cookies does not reset this.</summary>
    [Range(1, int.MaxValue)]
    public int TryMessagesPerAddress { get; set; } = 25;

    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan TryWindow { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// What an IPv6 /48 network may use, as a multiple of one client address's limit: an IPv6 client counts as its /64,
    /// and a site routed a /48 holds 65,536 of them. It multiplies <see cref="TryMessagesPerAddress"/> (demo messages per
    /// offering within <see cref="TryWindow"/>) and, despite its name (kept so configurations keep working), the widget's
    /// per-address limits too (<see cref="WidgetSessionsPerAddressPerHour"/>, <see cref="WidgetMessagesPerAddressPerMinute"/>
    /// and <see cref="WidgetMessagesPerAddressPerDay"/>, per subscription): one figure for how many subscriber lines a
    /// /48 is taken to hold.
    /// </summary>
    [Range(1, 100_000)]
    public int TryIpv6SiteMultiple { get; set; } = 10;

    /// <summary>
    /// Demo messages per offering per day (UTC), all visitors together: the shared demo flow's runs are the
    /// operator's cost, whatever addresses they come from.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int TryMessagesPerOfferingPerDay { get; set; } = 2000;

    /// <summary>Demo messages one IPv6 /48 may send per offering within <see cref="TryWindow"/>.</summary>
    internal int TryMessagesPerIpv6Site => PerIpv6Site(TryMessagesPerAddress);

    /// <summary>Widget sessions one IPv6 /48 may start per subscription per clock hour.</summary>
    internal int WidgetSessionsPerIpv6SitePerHour => PerIpv6Site(WidgetSessionsPerAddressPerHour);

    /// <summary>Widget messages one IPv6 /48 may send per subscription per clock minute.</summary>
    internal int WidgetMessagesPerIpv6SitePerMinute => PerIpv6Site(WidgetMessagesPerAddressPerMinute);

    /// <summary>Widget messages one IPv6 /48 may send per subscription per day (UTC).</summary>
    internal int WidgetMessagesPerIpv6SitePerDay => PerIpv6Site(WidgetMessagesPerAddressPerDay);

    private int PerIpv6Site(int perAddress) => (int)Math.Min(int.MaxValue, (long)perAddress * TryIpv6SiteMultiple);

    /// <summary>Lifetime of a widget visitor token (bound to one origin).</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan VisitorTokenLifetime { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// How long after its visitor token expired a widget conversation can still be carried on: a new session started
    /// with the previous token (same subscription, key and origin) keeps its conversation, so the agent's memory and
    /// any handoff go on across token renewals and page reloads; after this a new conversation starts.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "365.00:00:00")]
    public TimeSpan WidgetConversationResumeWindow { get; set; } = TimeSpan.FromHours(2);

    /// <summary>Widget messages per visitor per clock minute (a burst limit), counted in the database across replicas.</summary>
    [Range(1, int.MaxValue)]
    public int WidgetMessagesPerMinute { get; set; } = 10;

    /// <summary>
    /// Widget visitor sessions one client address (<see cref="ClientAddress"/>) may start per subscription per
    /// clock hour, counted in the database across replicas. A visitor starts one when opening the chat and one
    /// every <see cref="VisitorTokenLifetime"/> while chatting, so 30 leaves room for an office behind one address
    /// while a script faking the Origin header cannot mint tokens without end.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int WidgetSessionsPerAddressPerHour { get; set; } = 30;

    /// <summary>
    /// The daily widget message cap a subscription starts with (the buyer changes or removes it in the console's Widget
    /// tab). The publishable key is public by design, so a new widget is not an open tap on the organization's credits
    /// until its buyer says so. Empty: new widgets start without a cap.
    /// </summary>
    [Range(1, BuyerWebSettings.MaxWidgetDailyMessageCap)]
    public int? NewWidgetDailyMessageCap { get; set; } = 1000;

    /// <summary>
    /// Widget messages one client address may send per subscription per clock minute, whatever visitor tokens it
    /// holds; counted in the database across replicas, on top of <see cref="WidgetMessagesPerMinute"/>.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int WidgetMessagesPerAddressPerMinute { get; set; } = 20;

    /// <summary>
    /// Widget messages one client address may send per subscription per day (UTC), counted like
    /// <see cref="WidgetMessagesPerAddressPerMinute"/>: without it one address sending at that rate uses up the buyer's
    /// daily cap in under an hour (or, with no cap, spends the organization's credits all day). Like the other
    /// per-address limits it cannot be turned off; a large value loosens it. A message that is then not answered (no
    /// credits, say) is given back, unlike the minute's.
    /// </summary>
    [Range(1, int.MaxValue)]
    public int WidgetMessagesPerAddressPerDay { get; set; } = 200;

    /// <summary>
    /// Take the client address and scheme from <c>X-Forwarded-For</c>/<c>X-Forwarded-Proto</c> (set it only when
    /// the adapter is reachable solely through a reverse proxy or ingress that sets them): the per-address limits
    /// of the try page and the widget then count real visitors, not the proxy.
    /// </summary>
    public bool TrustForwardedHeaders { get; set; }

    /// <summary>
    /// With <see cref="TrustForwardedHeaders"/>: how many proxies in front of the adapter append to
    /// <c>X-Forwarded-For</c> (2 for a CDN before the ingress). The client is the entry that many places from its
    /// end; entries before it are whatever the client sent, and are ignored.
    /// </summary>
    [Range(1, 10)]
    public int ForwardedProxies { get; set; } = DefaultForwardedProxies;

    public const int DefaultForwardedProxies = 1;

    /// <summary>
    /// With <see cref="TrustForwardedHeaders"/>: the networks (CIDR, e.g. <c>10.244.0.0/16</c>, the ingress controller's
    /// pods) whose connections may name the client in <c>X-Forwarded-For</c>; a connection from anywhere else counts as
    /// its own address, whatever header it sends. Empty: every connection is believed, so nothing but the proxy may
    /// reach the adapter (a NetworkPolicy), or a client that reaches it directly picks its own address.
    /// </summary>
    public List<string> ForwardedProxyNetworks { get; set; } = [];

    /// <summary>The longest message the buyer pages accept.</summary>
    [Range(1, 1_000_000)]
    public int MaxMessageChars { get; set; } = 4000;

    internal Uri HomePortOfferingUrl(Guid offeringUuid) =>
        HomePortUrl is null ? new Uri("#", UriKind.Relative) : new Uri(HomePortUrl, HomePortOfferingPath.Replace("{uuid}", offeringUuid.ToString(), StringComparison.Ordinal));

    internal Uri Public(string relative) => new(PublicBaseUrl, relative);

    /// <summary>
    /// A console tab of the subscription whose resource it names (the console refuses it to another subscription's
    /// session); <paramref name="rest"/> adds query parameters (starting with '&amp;') and a fragment.
    /// </summary>
    internal string ConsoleLink(string tab, Guid resourceUuid, string rest = "") =>
        Public($"console?tab={tab}&resource={resourceUuid:N}{rest}").ToString();

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        // A link due for renewal waits up to one interval for the next run: longer than its remaining life, it dies in HomePort.
        if (ConsoleLinkRenewalInterval >= ConsoleLinkLifetime - ConsoleLinkRenewalAge)
        {
            yield return new ValidationResult(
                "Web:ConsoleLinkRenewalInterval must be shorter than Web:ConsoleLinkRenewBefore and than half of Web:ConsoleLinkLifetime.",
                [nameof(ConsoleLinkRenewalInterval), nameof(ConsoleLinkRenewBefore), nameof(ConsoleLinkLifetime)]);
        }

        // Checked whether or not the headers are trusted yet, so a typo shows before someone turns them on.
        foreach (var network in ForwardedProxyNetworks)
        {
            if (!System.Net.IPNetwork.TryParse(network.Trim(), out _))
            {
                yield return new ValidationResult(
                    $"Web:ForwardedProxyNetworks holds '{network}', which is not a network in CIDR notation (10.244.0.0/16; one address is 10.244.1.17/32).",
                    [nameof(ForwardedProxyNetworks)]);
            }
        }
    }
}
