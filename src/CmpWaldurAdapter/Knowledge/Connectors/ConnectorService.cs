using System.Text.Json;
using System.Text.Json.Serialization;
using CmpWaldurAdapter.Knowledge.Documents;
using CmpWaldurAdapter.Knowledge.Sources;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Knowledge.Connectors;

/// <summary>What a connector reads and the credentials it reads with; stored only encrypted.</summary>
public sealed record ConnectorSettings(
    [property: JsonPropertyName("notion_token")] string? NotionToken = null,
    [property: JsonPropertyName("notion_ids")] IReadOnlyList<string>? NotionIds = null,
    [property: JsonPropertyName("site_url")] string? SiteUrl = null,
    [property: JsonPropertyName("email")] string? Email = null,
    [property: JsonPropertyName("api_token")] string? ApiToken = null,
    [property: JsonPropertyName("space_key")] string? SpaceKey = null);

/// <summary>What a sync did.</summary>
public sealed record SyncOutcome(int Added, int Replaced, int Removed, int Unchanged, int Skipped);

/// <summary>
/// Notion and Confluence connectors: connecting reads the source once with the given credentials (so a
/// wrong or expired token is a clear error at once) and adds every page; a re-sync replaces only the pages
/// whose version changed and removes pages that are gone. Credentials are encrypted at rest.
/// </summary>
public sealed class ConnectorService(
    IDbContextFactory<AdapterDbContext> dbs,
    KnowledgeBase knowledge,
    NotionSource notion,
    ConfluenceSource confluence,
    UpstreamCredentials credentials,
    DatabaseLeases leases,
    IOptionsMonitor<KnowledgeOptions> options,
    TimeProvider clock,
    ILogger<ConnectorService> logger)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public Task<(KnowledgeConnector Connector, SyncOutcome Outcome)> ConnectAsync(KnowledgeTenant tenant, ConnectorKind kind, ConnectorSettings settings, CancellationToken cancellationToken) =>
        UnderSetupLeaseAsync(tenant.SubscriptionId, async setup =>
        {
            await RefuseSecondConnectorAsync(tenant.SubscriptionId, kind, settings, setup.Held);

            // Read before storing anything: credentials that do not work are refused, not kept.
            var listed = await ListAsync(kind, settings, setup.Held);
            var now = clock.GetUtcNow();
            var connector = new KnowledgeConnector
            {
                Id = Guid.CreateVersion7(now),
                SubscriptionId = tenant.SubscriptionId,
                Kind = kind,
                Description = Describe(kind, settings),
                ProtectedSettings = credentials.Protect(JsonSerializer.Serialize(settings, Json)),
                CreatedAt = now,
                UpdatedAt = now,
            };

            // Its own lease before it is listed: a sync, change or delete waits until its first pages are in.
            return await UnderSyncLeaseAsync(connector.Id, async sync =>
            {
                await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
                {
                    db.KnowledgeConnectors.Add(connector);
                    // Fenced by the setup lease too: one taken over while the source was read may have let another connect of the same source past the check.
                    await SaveFencedAsync(db, setup, sync);
                }

                logger.LogInformation("Connected {Kind} connector {ConnectorId} to the knowledge base of subscription {SubscriptionId}", kind, connector.Id, tenant.SubscriptionId);
                try
                {
                    var outcome = await ApplyAsync(tenant, connector, listed, sync);
                    return (connector, outcome);
                }
                catch when (!sync.Lost)
                {
                    // Nothing was added: the buyer connects again rather than finding a half-made connector. (One whose lease
                    // another process took over is that one's to sync now.)
                    await ForgetIfEmptyAsync(connector.Id);
                    throw;
                }
            }, cancellationToken);
        }, cancellationToken);

    public Task<(KnowledgeConnector Connector, SyncOutcome Outcome)> SyncAsync(KnowledgeTenant tenant, Guid connectorId, CancellationToken cancellationToken) =>
        UnderSyncLeaseAsync(connectorId, async sync =>
        {
            var connector = await FindAsync(tenant.SubscriptionId, connectorId, sync.Held);
            var settings = SettingsOf(connector);
            IReadOnlyList<SourceDocument> listed;
            try
            {
                listed = await ListAsync(connector.Kind, settings, sync.Held);
            }
            catch (KnowledgeException exception)
            {
                await RecordAsync(connector.Id, exception.Message, sync);
                throw;
            }

            var outcome = await ApplyAsync(tenant, connector, listed, sync);
            return (await FindAsync(tenant.SubscriptionId, connectorId, cancellationToken), outcome);
        }, cancellationToken);

    /// <summary>
    /// Changes what a connector reads or the credentials it reads with (a renewed token), then syncs: pages already
    /// there and unchanged stay, and cost nothing again. New settings that cannot read the source are refused and
    /// the old ones kept.
    /// </summary>
    public Task<(KnowledgeConnector Connector, SyncOutcome Outcome)> UpdateAsync(KnowledgeTenant tenant, Guid connectorId, ConnectorSettings changes, CancellationToken cancellationToken) =>
        UnderSetupLeaseAsync(tenant.SubscriptionId, setup => UnderSyncLeaseAsync(connectorId, async sync =>
        {
            var connector = await FindAsync(tenant.SubscriptionId, connectorId, sync.Held);
            var settings = Merge(connector.Kind, SettingsOf(connector), changes);
            await RefuseSecondConnectorAsync(tenant.SubscriptionId, connector.Kind, settings, sync.Held, except: connector.Id);
            var listed = await ListAsync(connector.Kind, settings, sync.Held);

            await using (var db = await dbs.CreateDbContextAsync(sync.Held))
            {
                var row = await db.KnowledgeConnectors.FirstAsync(c => c.Id == connector.Id, CancellationToken.None);
                row.ProtectedSettings = credentials.Protect(JsonSerializer.Serialize(settings, Json));
                row.Description = Describe(connector.Kind, settings);
                row.LastError = null;
                row.UpdatedAt = clock.GetUtcNow();
                // Fenced by the setup lease too: one taken over while the source was read may have let another change onto the same source past the check.
                await SaveFencedAsync(db, setup, sync);
                connector = row;
            }

            logger.LogInformation("Updated the settings of connector {ConnectorId} of subscription {SubscriptionId}", connector.Id, tenant.SubscriptionId);
            var outcome = await ApplyAsync(tenant, connector, listed, sync);
            return (await FindAsync(tenant.SubscriptionId, connectorId, cancellationToken), outcome);
        }, cancellationToken), cancellationToken);

    /// <summary>
    /// Removes a connector. Its pages leave the knowledge base with it, or stay as ordinary documents when
    /// <paramref name="keepDocuments"/> (no longer synced). A failure part-way leaves the connector with the
    /// pages not yet removed, so deleting it again finishes the job.
    /// </summary>
    public Task<int> DeleteAsync(KnowledgeTenant tenant, Guid connectorId, bool keepDocuments, CancellationToken cancellationToken) =>
        UnderSyncLeaseAsync(connectorId, async sync =>
        {
            var connector = await FindAsync(tenant.SubscriptionId, connectorId, sync.Held);
            var removed = 0;
            await using (var db = await dbs.CreateDbContextAsync(sync.Held))
            {
                if (keepDocuments)
                {
                    await FencedAsync(db, () => db.KnowledgeDocuments.Where(d => d.ConnectorId == connector.Id).ExecuteUpdateAsync(d => d.SetProperty(x => x.ConnectorId, (Guid?)null), CancellationToken.None), sync);
                }
                else
                {
                    var pages = await db.KnowledgeDocuments.AsNoTracking().Where(d => d.ConnectorId == connector.Id).ToListAsync(sync.Held);
                    await knowledge.RemoveAsync(tenant, pages, "the connector was deleted before the page was parsed", sync.Held, sync.FenceAsync);
                    removed = pages.Count;
                }

                await FencedAsync(db, () => db.KnowledgeConnectors.Where(c => c.Id == connector.Id).ExecuteDeleteAsync(CancellationToken.None), sync);
            }

            logger.LogInformation("Deleted connector {ConnectorId} of subscription {SubscriptionId} ({Removed} page(s) removed, documents kept: {Kept})", connector.Id, tenant.SubscriptionId, removed, keepDocuments);
            return removed;
        }, cancellationToken);

    /// <summary>One sync, update or delete per connector at a time across all replicas: two would upload the same changed page twice.</summary>
    /// <remarks>
    /// The lease is renewed while the work runs (a sync of a large source can outlast one <see cref="KnowledgeOptions.SyncLeaseDuration"/>),
    /// and every save under it is fenced: a holder whose lease ran out and was taken over (its renewals lost for a whole lease)
    /// stops, saves nothing more, and takes out of RAGFlow the page it was adding; its caller is told the connector is being synced.
    /// </remarks>
    private Task<T> UnderSyncLeaseAsync<T>(Guid connectorId, Func<DatabaseLeaseHolding, Task<T>> action, CancellationToken cancellationToken) =>
        UnderLeaseAsync(SyncLeaseName(connectorId), "sync_in_progress", "This connector is being synced right now; try again when it has finished.", action, cancellationToken);

    /// <summary>
    /// One connect or settings change per subscription at a time: two would both pass the check for a source already connected.
    /// The save of the checked settings is fenced by it, so a holder whose lease was taken over (its successor checked without
    /// seeing this one's settings) saves nothing.
    /// </summary>
    private Task<T> UnderSetupLeaseAsync<T>(Guid subscriptionId, Func<DatabaseLeaseHolding, Task<T>> action, CancellationToken cancellationToken) =>
        UnderLeaseAsync($"knowledge-connector-setup:{subscriptionId:N}", "connector_setup_in_progress", "Another connector of this knowledge base is being connected or changed right now; try again when it has finished.", action, cancellationToken);

    private async Task<T> UnderLeaseAsync<T>(string lease, string code, string message, Func<DatabaseLeaseHolding, Task<T>> action, CancellationToken cancellationToken)
    {
        await using var holding = await leases.TryHoldAsync(lease, options.CurrentValue.SyncLeaseDuration, cancellationToken)
            ?? throw new KnowledgeException(StatusCodes.Status409Conflict, code, message);
        try
        {
            return await action(holding);
        }
        catch (Exception exception) when (holding.Lost && !cancellationToken.IsCancellationRequested)
        {
            // Whatever stopped the work, its lease is another process's now: that one does the work.
            logger.LogWarning("The lease {Lease} was taken over by another process; the work under it here stopped and saved nothing more", lease);
            throw new KnowledgeException(StatusCodes.Status409Conflict, code, message, innerException: exception);
        }
    }

    /// <summary>Saves what <paramref name="db"/> tracks only while every one of <paramref name="leases"/> is still held (<see cref="DatabaseLeaseHolding.FenceAsync"/>).</summary>
    private static Task SaveFencedAsync(AdapterDbContext db, params DatabaseLeaseHolding[] leases) =>
        FencedAsync(db, () => db.SaveChangesAsync(CancellationToken.None), leases);

    /// <summary>Runs <paramref name="write"/> in one transaction after the leases' fences, on no caller's token (a save once begun is finished).</summary>
    private static async Task FencedAsync(AdapterDbContext db, Func<Task> write, params DatabaseLeaseHolding[] leases)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(CancellationToken.None);
        foreach (var lease in leases)
        {
            await lease.FenceAsync(db, CancellationToken.None);
        }

        await write();
        await transaction.CommitAsync(CancellationToken.None);
    }

    /// <summary>The lease a re-sync of the connector holds.</summary>
    public static string SyncLeaseName(Guid connectorId) => $"knowledge-connector-sync:{connectorId:N}";

    public async Task<IReadOnlyList<KnowledgeConnector>> ListAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var connectors = await db.KnowledgeConnectors.AsNoTracking().Where(c => c.SubscriptionId == subscriptionId).ToListAsync(cancellationToken);
        return connectors.OrderBy(c => c.CreatedAt).ToList();
    }

    private async Task<KnowledgeConnector> FindAsync(Guid subscriptionId, Guid connectorId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.KnowledgeConnectors.AsNoTracking().FirstOrDefaultAsync(c => c.Id == connectorId && c.SubscriptionId == subscriptionId, cancellationToken)
            ?? throw new KnowledgeException(StatusCodes.Status404NotFound, "connector_not_found", "The knowledge base has no such connector.", "id");
    }

    private ConnectorSettings SettingsOf(KnowledgeConnector connector) =>
        JsonSerializer.Deserialize<ConnectorSettings>(credentials.Unprotect(connector.ProtectedSettings), Json)!;

    /// <summary>The given fields replace the stored ones; a field of the other kind of connector is a mistake worth saying.</summary>
    private static ConnectorSettings Merge(ConnectorKind kind, ConnectorSettings current, ConnectorSettings changes)
    {
        var foreign = kind == ConnectorKind.Notion
            ? new[] { (changes.SiteUrl, "site_url"), (changes.Email, "email"), (changes.ApiToken, "api_token"), (changes.SpaceKey, "space_key") }
            : new[] { (changes.NotionToken, "integration_token"), (changes.NotionIds is null ? null : "ids", "ids") };
        if (foreign.FirstOrDefault(f => f.Item1 is not null) is { Item2: { } name })
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", $"{name} does not apply to a {kind.ToString().ToLowerInvariant()} connector.", name);
        }

        if (changes == new ConnectorSettings())
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", "Send at least one setting to change.");
        }

        // The stored token goes only to the site it was given for: a new site needs its own account and token, or
        // whoever holds the API key could have the stored one sent to a site of theirs.
        if (changes.SiteUrl is { } site && !SameHost(site, current.SiteUrl) && (changes.Email is null || changes.ApiToken is null))
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_request", "A new site_url needs the email and api_token of an account on that site in the same request.", changes.Email is null ? "email" : "api_token");
        }

        return new ConnectorSettings(
            changes.NotionToken ?? current.NotionToken,
            changes.NotionIds ?? current.NotionIds,
            changes.SiteUrl ?? current.SiteUrl,
            changes.Email ?? current.Email,
            changes.ApiToken ?? current.ApiToken,
            changes.SpaceKey ?? current.SpaceKey);
    }

    private static bool SameHost(string site, string? stored) =>
        Uri.TryCreate(site, UriKind.Absolute, out var next) && Uri.TryCreate(stored, UriKind.Absolute, out var before)
        && string.Equals(next.Scheme, before.Scheme, StringComparison.OrdinalIgnoreCase) && string.Equals(next.Authority, before.Authority, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Connecting a source the subscription already reads would add and charge every page a second time (the usual
    /// case: reconnecting after a token expired). The buyer is pointed at the existing connector instead.
    /// </summary>
    private async Task RefuseSecondConnectorAsync(Guid subscriptionId, ConnectorKind kind, ConnectorSettings settings, CancellationToken cancellationToken, Guid? except = null)
    {
        var targets = Targets(kind, settings);
        foreach (var existing in await ListAsync(subscriptionId, cancellationToken))
        {
            if (existing.Kind == kind && existing.Id != except && Targets(kind, SettingsOf(existing)).Overlaps(targets))
            {
                throw new KnowledgeException(StatusCodes.Status409Conflict, "connector_exists",
                    $"Connector {existing.Id} already reads this source. Give it new credentials with PATCH /v1/knowledge/connectors/{existing.Id}, or delete it first.", "id");
            }
        }
    }

    /// <summary>What a connector reads: Notion page/database ids in Notion's dashed form, or the Confluence site and space.</summary>
    private static HashSet<string> Targets(ConnectorKind kind, ConnectorSettings settings) => kind == ConnectorKind.Notion
        ? (settings.NotionIds ?? []).Select(raw => NotionReference.TryParse(raw)?.Id ?? raw.Trim()).ToHashSet(StringComparer.OrdinalIgnoreCase)
        : [$"{(Uri.TryCreate(settings.SiteUrl, UriKind.Absolute, out var site) ? site.Host : settings.SiteUrl)}/{settings.SpaceKey?.Trim()}".ToLowerInvariant()];

    private async Task<IReadOnlyList<SourceDocument>> ListAsync(ConnectorKind kind, ConnectorSettings settings, CancellationToken cancellationToken)
    {
        try
        {
            return kind switch
            {
                ConnectorKind.Notion => await notion.ListAsync(settings.NotionToken ?? string.Empty, settings.NotionIds ?? [], cancellationToken),
                ConnectorKind.Confluence => await confluence.ListAsync(
                    Uri.TryCreate(settings.SiteUrl, UriKind.Absolute, out var site) ? site : throw new KnowledgeException(StatusCodes.Status400BadRequest, "invalid_site_url", "site_url must be an absolute https address such as https://your-team.atlassian.net.", "site_url"),
                    settings.Email ?? string.Empty,
                    settings.ApiToken ?? string.Empty,
                    settings.SpaceKey ?? string.Empty,
                    cancellationToken),
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
        }
        catch (SourceException exception)
        {
            throw SourceErrors.ToKnowledge(exception);
        }
    }

    private async Task<SyncOutcome> ApplyAsync(KnowledgeTenant tenant, KnowledgeConnector connector, IReadOnlyList<SourceDocument> listed, DatabaseLeaseHolding sync)
    {
        var cancellationToken = sync.Held;
        var (fitting, skipped) = Fitting(listed);
        List<KnowledgeDocument> stored;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            stored = await db.KnowledgeDocuments.AsNoTracking().Where(d => d.ConnectorId == connector.Id).ToListAsync(cancellationToken);
        }

        // A page whose copy failed or was stopped (or left RAGFlow unparsed) has no current version: the sync adds it again.
        var versions = stored.Where(d => d.ExternalId is not null)
            .GroupBy(d => d.ExternalId!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderByDescending(d => d.CreatedAt).First() is { Status: not (ParseStates.Fail or ParseStates.Cancel) } latest ? latest.SourceVersion ?? string.Empty : string.Empty, StringComparer.Ordinal);
        var plan = SourceSync.Plan(versions, fitting);
        var uploads = plan.Add.Concat(plan.Replace).ToList();
        var replacedIds = plan.Replace.Select(d => d.ExternalId).Concat(plan.Delete).ToHashSet(StringComparer.Ordinal);
        var outgoing = stored.Where(d => d.ExternalId is not null && replacedIds.Contains(d.ExternalId)).ToList();

        await using var holds = await knowledge.EnsureRoomAsync(tenant, uploads.Count, outgoing.Count, cancellationToken);
        var source = connector.Kind == ConnectorKind.Notion ? DocumentSource.Notion : DocumentSource.Confluence;
        // Old versions go first: uploading a page while its old version is there makes RAGFlow rename the new
        // one "x(1).md". A failed upload after that leaves the page missing, and the next sync adds it.
        await knowledge.RemoveAsync(tenant, outgoing, "the page was replaced or removed before it was parsed", cancellationToken, sync.FenceAsync);

        await knowledge.AddAsync(
            tenant,
            uploads.Select(d => (KnowledgeFile.FromBytes(d.FileName, d.ContentType, d.Content), new DocumentOrigin(source, connector.Id, d.ExternalId, d.Version, d.SourceUrl?.ToString()))).ToList(),
            holds,
            cancellationToken,
            sync.FenceAsync);

        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            var row = await db.KnowledgeConnectors.FirstAsync(c => c.Id == connector.Id, CancellationToken.None);
            row.LastSyncedAt = clock.GetUtcNow();
            row.LastError = skipped > 0 ? $"{skipped} page(s) are larger than the file size limit and were left out." : null;
            row.UpdatedAt = row.LastSyncedAt.Value;
            await SaveFencedAsync(db, sync);
        }

        var outcome = new SyncOutcome(plan.Add.Count, plan.Replace.Count, plan.Delete.Count, plan.Unchanged.Count, skipped);
        logger.LogInformation("Synced connector {ConnectorId} of subscription {SubscriptionId}: {Added} added, {Replaced} replaced, {Removed} removed, {Unchanged} unchanged, {Skipped} skipped",
            connector.Id, tenant.SubscriptionId, outcome.Added, outcome.Replaced, outcome.Removed, outcome.Unchanged, outcome.Skipped);
        return outcome;
    }

    private (List<SourceDocument> Fitting, int Skipped) Fitting(IReadOnlyList<SourceDocument> listed)
    {
        var fitting = new List<SourceDocument>();
        var skipped = 0;
        foreach (var document in listed)
        {
            try
            {
                knowledge.Validate(document.FileName, document.Content.LongLength);
                fitting.Add(document);
            }
            catch (KnowledgeException)
            {
                skipped++;
            }
        }

        return (fitting, skipped);
    }

    private async Task RecordAsync(Guid connectorId, string error, DatabaseLeaseHolding sync)
    {
        await using var db = await dbs.CreateDbContextAsync();
        var row = await db.KnowledgeConnectors.FirstOrDefaultAsync(c => c.Id == connectorId);
        if (row is not null)
        {
            row.LastError = KnowledgeBase.Shorten(error, 2000);
            row.UpdatedAt = clock.GetUtcNow();
            await SaveFencedAsync(db, sync);
        }
    }

    private async Task ForgetIfEmptyAsync(Guid connectorId)
    {
        await using var db = await dbs.CreateDbContextAsync();
        if (!await db.KnowledgeDocuments.AnyAsync(d => d.ConnectorId == connectorId))
        {
            await db.KnowledgeConnectors.Where(c => c.Id == connectorId).ExecuteDeleteAsync();
        }
    }

    private static string Describe(ConnectorKind kind, ConnectorSettings settings) => kind switch
    {
        ConnectorKind.Notion => $"Notion: {string.Join(", ", settings.NotionIds ?? [])}",
        _ => $"Confluence: space {settings.SpaceKey} on {(Uri.TryCreate(settings.SiteUrl, UriKind.Absolute, out var site) ? site.Host : settings.SiteUrl)}",
    };
}

/// <summary>How source failures reach the buyer: the source's own message (never a token) with a status that says whose move it is.</summary>
public static class SourceErrors
{
    public static KnowledgeException ToKnowledge(SourceException exception) => exception switch
    {
        SourceAccessDeniedException => new KnowledgeException(StatusCodes.Status422UnprocessableEntity, "source_access_denied", exception.Message, innerException: exception),
        SourceNotFoundException => new KnowledgeException(StatusCodes.Status422UnprocessableEntity, "source_not_found", exception.Message, innerException: exception),
        SourceRejectedException => new KnowledgeException(StatusCodes.Status400BadRequest, "source_rejected", exception.Message, innerException: exception),
        _ => new KnowledgeException(StatusCodes.Status502BadGateway, "source_unavailable", exception.Message, innerException: exception),
    };
}
