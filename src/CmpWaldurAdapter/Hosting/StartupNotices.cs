using System.Net;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.KeyRing;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Web;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.Extensions.Options;
using Refit;

namespace CmpWaldurAdapter.Hosting;

/// <summary>
/// What <c>serve</c> tells the operator once at start about a configuration or database that runs but not as they
/// likely meant: each would otherwise show only as orders that build nothing or requests failing with SQL errors.
/// </summary>
public static class StartupNotices
{
    private static readonly TimeSpan SchemaReadTimeout = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan WaldurReadTimeout = TimeSpan.FromSeconds(5);

    public static async Task LogStartupNoticesAsync(this IServiceProvider services, CancellationToken cancellationToken)
    {
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(StartupNotices));
        if (services.GetServices<ITenantProvisioner>().OfType<RecordOnlyProvisioner>().Any())
        {
            logger.LogWarning(
                "Langflow:BaseUrl is not set: orders are recorded only (they go done in Waldur) and no agents are built; chat answers 503 agent_unavailable. Set Langflow:BaseUrl (and Ragflow) to provision tenants");
        }

        await LogOfferingNoticesAsync(services, logger, cancellationToken);

        foreach (var (setting, url) in SendingTheTokenInClear(services.GetRequiredService<IOptions<WaldurOptions>>().Value, services.GetRequiredService<IOptions<EventsOptions>>().Value))
        {
            logger.LogWarning(
                "{Setting} is {Scheme}:// to {Host}: the Waldur service-provider token crosses the network unencrypted with every call (and as the STOMP passcode). Use https:// and wss:// unless the path never leaves a trusted network",
                setting, url.Scheme, url.Host);
        }

        // On PostgreSQL only with the explicit opt-out (the start is refused otherwise); on SQLite allowed, but said.
        if (string.IsNullOrWhiteSpace(services.GetRequiredService<IOptions<KeyRingOptions>>().Value.KeyEncryptionKey))
        {
            logger.LogWarning(
                "DataProtection:KeyEncryptionKey is not set: the Data Protection key ring, which encrypts the tenants' Langflow credentials and signs console links, is stored unencrypted in the database, so whoever can read the database (or a copy of it) can decrypt them. Generate a key with `openssl rand -base64 32` and set DataProtection__KeyEncryptionKey");
        }

        var web = services.GetRequiredService<IOptions<WebOptions>>().Value;
        if (services.GetRequiredService<IConfiguration>()["Web:PublicBaseUrl"] is null)
        {
            logger.LogWarning(
                "Web:PublicBaseUrl is not set: the console links in Waldur's resource reports, the one-time key links and the offerings' try links all point at {PublicBaseUrl}, which buyers cannot open. Set it to the adapter's public address",
                web.PublicBaseUrl);
        }


        if (web.PublicBaseUrl.Scheme == Uri.UriSchemeHttps && !web.TrustForwardedHeaders)
        {
            logger.LogWarning(
                "Web:PublicBaseUrl is https but Web:TrustForwardedHeaders is off: every request is taken as HTTPS for its cookies and HSTS, but behind a reverse proxy or ingress the try page's and widget's per-address limits count the proxy's address for every visitor. Set Web:TrustForwardedHeaders when TLS ends at a proxy that alone reaches the adapter");
        }

        if (web.TrustForwardedHeaders && web.ForwardedProxyNetworks.Count == 0)
        {
            logger.LogWarning(
                "Web:TrustForwardedHeaders is on and Web:ForwardedProxyNetworks is empty: X-Forwarded-For is believed from every connection, so a client that reaches the adapter without passing the proxy picks the address the try page's and widget's per-address limits count (and the logs show). List the proxy's networks in Web:ForwardedProxyNetworks (CIDR, e.g. the ingress controller's pods)");
        }

        // A database that cannot be read now is reported by /readyz; the start does not wait on it.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(SchemaReadTimeout);
        var schema = services.GetRequiredService<SchemaStatus>();
        try
        {
            var pending = await schema.PendingAsync(timeout.Token);
            if (pending.Count > 0)
            {
                logger.LogError(
                    "The database schema is behind this build: {PendingCount} migration(s) not applied ({PendingMigrations}). Run 'cmp-adapter db migrate' (the Helm chart's migration hook); until then /readyz answers 503 and this replica receives no traffic",
                    pending.Count, string.Join(", ", pending));
                return;
            }

            var unknown = await schema.UnknownAppliedAsync(timeout.Token);
            if (unknown.Count > 0)
            {
                // Mid-rollout or a rollback: old replicas must keep serving, so this is said but readiness stays green.
                logger.LogWarning(
                    "The database holds {UnknownCount} migration(s) this build does not know ({UnknownMigrations}): a newer build migrated it. Serving on it, as during a rollout or rollback",
                    unknown.Count, string.Join(", ", unknown));
            }
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Could not read the database's applied migrations at start ({Error}); /readyz reports the database until it can", exception.GetType().Name);
        }
    }

    /// <summary>
    /// The settings that send the service-provider token (with every Waldur call, and as the STOMP passcode) unencrypted to
    /// another machine: anyone on the path has it.
    /// </summary>
    internal static IEnumerable<(string Setting, Uri Url)> SendingTheTokenInClear(WaldurOptions waldur, EventsOptions events)
    {
        foreach (var (setting, url) in new[] { ("Waldur:BaseUrl", waldur.BaseUrl), ("Events:WebSocketUrl", events.Enabled ? events.WebSocketUrl : null) })
        {
            if (url is { IsLoopback: false } && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeWs))
            {
                yield return (setting, url);
            }
        }
    }

    /// <summary>
    /// Offerings that would look served but are not: none at all, a slug the catalogue has no agent for (each Create order
    /// approved, then erred), a UUID Waldur does not show this token (its orders are never found), or a credit price that
    /// is not the plan's (every organization's Waldur credit turned into the wrong number of credits).
    /// </summary>
    private static async Task LogOfferingNoticesAsync(IServiceProvider services, ILogger logger, CancellationToken cancellationToken)
    {
        var served = services.GetRequiredService<ServedOfferings>().Offerings;
        if (served.Count == 0)
        {
            logger.LogWarning("Offerings is empty: no offering is served, so no order is looked for. List each offering's uuid and slug (what 'cmp-adapter offerings register' prints)");
            return;
        }

        var building = !services.GetServices<ITenantProvisioner>().OfType<RecordOnlyProvisioner>().Any();
        var credits = services.GetRequiredService<IOptions<CreditsOptions>>().Value;
        OfferingCatalogue? catalogue = null;
        try
        {
            // Read only where it is used: recording orders without Langflow needs no catalogue folder.
            catalogue = building || credits.Funding == CreditFunding.WaldurCustomerCredits ? services.GetRequiredService<OfferingCatalogue>() : null;
        }
        catch (CatalogueException)
        {
            // A catalogue that cannot be read says so itself, by file and line, where it is used.
        }

        foreach (var offering in catalogue is null ? [] : served)
        {
            var entry = catalogue!.Find(offering.Slug);
            if (entry is null)
            {
                if (building)
                {
                    logger.LogError(
                        "Offering {OfferingUuid} is served as {Slug}, which the catalogue ({CatalogueDirectory}) has no agent for: each of its Create orders is approved and then erred. Correct the slug under Offerings",
                        offering.Uuid, offering.Slug, catalogue.Directory);
                }
            }
            else if (credits.Funding == CreditFunding.WaldurCustomerCredits
                && entry.Plan.Prices.Where(p => p.Value != credits.CreditPrice).Select(p => p.Key).ToList() is [_, ..] mispriced)
            {
                logger.LogError(
                    "Credits:CreditPrice is {CreditPrice}, but offering {Slug} prices {Components} otherwise in its plan: organizations' Waldur credit is turned into credits at the wrong rate. Set Credits:CreditPrice to the plans' unit price",
                    credits.CreditPrice, offering.Slug, string.Join(", ", mispriced.Select(c => $"{c} at {entry.Plan.Prices[c]}")));
            }
        }

        // Waldur being away now is /status's to report; only an answer that the offering is not there is said here. The
        // offerings are read together under one time limit: a Waldur that hangs delays the start by that much, not that
        // much per offering (past the orchestrator's start-up probe).
        var waldur = services.GetRequiredService<IWaldurApi>();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(WaldurReadTimeout);
        await Task.WhenAll(served.Select(async offering =>
        {
            try
            {
                await waldur.GetProviderOfferingAsync(offering.Uuid, timeout.Token);
            }
            catch (ApiException exception) when (exception.StatusCode == HttpStatusCode.NotFound)
            {
                logger.LogError(
                    "Waldur has no offering {OfferingUuid} ({Slug}) that this token manages: its orders are never found. Correct the uuid under Offerings, or give the token's user the offering's service provider",
                    offering.Uuid, offering.Slug);
            }
            catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
            {
                logger.LogDebug("Could not read offering {OfferingUuid} from Waldur at start ({Error})", offering.Uuid, exception.GetType().Name);
            }
        }));
    }
}
