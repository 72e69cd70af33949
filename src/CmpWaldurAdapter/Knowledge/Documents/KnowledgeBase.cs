using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Refit;

namespace CmpWaldurAdapter.Knowledge.Documents;

/// <summary>A file to add: its name (with the real extension), media type, size, and how to read it (opened once, when it is sent to RAGFlow).</summary>
public sealed record KnowledgeFile(string FileName, string ContentType, long Length, Func<Stream> Open)
{
    public static KnowledgeFile FromBytes(string fileName, string contentType, byte[] content) =>
        new(fileName, contentType, content.LongLength, () => new MemoryStream(content, writable: false));
}

/// <summary>Where an added file came from, kept on its record for listing and re-sync.</summary>
public sealed record DocumentOrigin(DocumentSource Source, Guid? ConnectorId = null, string? ExternalId = null, string? Version = null, string? SourceUrl = null)
{
    public static readonly DocumentOrigin Upload = new(DocumentSource.Upload);
}

/// <summary>The subscription a knowledge-base call acts on, with what the call needs from its row.</summary>
public sealed record KnowledgeTenant(Guid SubscriptionId, Guid CustomerId, Guid OfferingUuid, string DatasetId);

/// <summary>
/// A subscription's documents in its own RAGFlow dataset: add (upload, then parse only what is UNSTART, FAIL
/// or CANCEL), list, delete. The dataset id always comes from the subscription's row, never from a request.
/// Charging happens later, once, when <see cref="ParseMonitor"/> first sees a document DONE.
/// </summary>
public sealed class KnowledgeBase(
    IDbContextFactory<AdapterDbContext> dbs,
    IServiceProvider services,
    PriceBooks priceBooks,
    CreditLedger ledger,
    KnowledgePresence presence,
    IOptionsMonitor<KnowledgeOptions> options,
    TimeProvider clock,
    ILogger<KnowledgeBase> logger)
{
    /// <summary>Documents per page when listing a dataset: RAGFlow's maximum.</summary>
    public const int ListPageSize = 100;

    /// <summary>RAGFlow's client exists only when <c>Ragflow:BaseUrl</c> is configured.</summary>
    internal IRagflowApi Ragflow => services.GetService<IRagflowApi>()
        ?? throw new KnowledgeException(StatusCodes.Status503ServiceUnavailable, "knowledge_base_unavailable", "The knowledge base is not configured on this server.");

    /// <summary>The subscription's dataset; writes also need it servable (not paused, downscaled or ended).</summary>
    public async Task<KnowledgeTenant> TenantAsync(Guid subscriptionId, bool forWrite, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking().FirstOrDefaultAsync(s => s.Id == subscriptionId, cancellationToken)
            ?? throw new KnowledgeException(StatusCodes.Status404NotFound, "subscription_not_found", "The subscription does not exist.");
        if (forWrite && !subscription.IsServable)
        {
            throw new KnowledgeException(StatusCodes.Status403Forbidden, "subscription_suspended", "The subscription is not active (paused, downscaled or ended): documents cannot be added now.");
        }

        if (string.IsNullOrEmpty(subscription.RagflowDatasetId))
        {
            throw new KnowledgeException(StatusCodes.Status409Conflict, "knowledge_base_not_ready", "The subscription's knowledge base is not provisioned yet; try again in a minute.");
        }

        return new KnowledgeTenant(subscription.Id, subscription.CustomerId, subscription.OfferingUuid, subscription.RagflowDatasetId);
    }

    /// <summary>Checks a file's name and size against the limits: 415 for a type not accepted, 413 for too large, 400 for empty.</summary>
    public void Validate(string fileName, long size, string param = "file")
    {
        var limits = options.CurrentValue;
        var extension = Path.GetExtension(fileName).TrimStart('.').ToLowerInvariant();
        if (extension.Length == 0 || !limits.EffectiveExtensions.Contains(extension, StringComparer.OrdinalIgnoreCase))
        {
            throw new KnowledgeException(
                StatusCodes.Status415UnsupportedMediaType,
                "unsupported_file_type",
                $"'{Shorten(fileName)}' is not an accepted type. Accepted: {string.Join(", ", limits.EffectiveExtensions)}.",
                param);
        }

        if (size > limits.MaxFileBytes)
        {
            throw new KnowledgeException(
                StatusCodes.Status413PayloadTooLarge,
                "file_too_large",
                $"'{Shorten(fileName)}' is {Megabytes(size)}; the limit is {Megabytes(limits.MaxFileBytes)} per file.",
                param);
        }

        if (size == 0)
        {
            throw new KnowledgeException(StatusCodes.Status400BadRequest, "empty_file", $"'{Shorten(fileName)}' is empty.", param);
        }
    }

    /// <summary>
    /// Refuses before anything is uploaded when the knowledge base would hold too many documents (409) or the
    /// organization cannot pay for parsing them (402). The parses are paid for by holds taken now, one per
    /// document, each an atomic reserve in the ledger: two requests racing for the last credits cannot both
    /// pass, nor two racing for the last places (the holds of uploads under way count as places). The holds go to the documents as they are recorded (<see cref="AddAsync"/>) and are settled when
    /// the parse is done; disposing the returned holds gives back those no document took.
    /// </summary>
    public async Task<ParseHolds> EnsureRoomAsync(KnowledgeTenant tenant, int adding, int removing, CancellationToken cancellationToken)
    {
        if (adding <= 0)
        {
            return new ParseHolds(ledger, logger, []);
        }

        await EnsureUnderLimitAsync(tenant, adding, removing, holding: 0, cancellationToken);
        var price = Price(tenant);
        var holds = new ParseHolds(ledger, logger, []);
        try
        {
            for (var i = 0; i < adding; i++)
            {
                var requestId = $"parse-hold:{Guid.CreateVersion7(clock.GetUtcNow()):N}";
                var held = await ledger.ReserveAsync(tenant.CustomerId, tenant.SubscriptionId, tenant.OfferingUuid, ActionClass.RagDocument, price.Credits, price.PriceBookVersion, requestId,
                    lifetime: options.CurrentValue.ParseHoldLifetime, cancellationToken: cancellationToken);
                if (!held.IsHeld)
                {
                    await holds.DisposeAsync();
                    throw held.Refusal switch
                    {
                        CreditRefusal.FundingUnavailable => new KnowledgeException(StatusCodes.Status503ServiceUnavailable, "credits_unavailable", "The organization's credits cannot be read from Waldur right now; try again later."),
                        CreditRefusal.SubscriptionNotServable => new KnowledgeException(StatusCodes.Status403Forbidden, "subscription_suspended", "The subscription is not active (paused, downscaled or ended): documents cannot be added now."),
                        CreditRefusal.OfferingNotCovered => new KnowledgeException(StatusCodes.Status402PaymentRequired, "insufficient_credits", Api.ApiErrors.CreditNotCoveringAgent),
                        _ => new KnowledgeException(
                            StatusCodes.Status402PaymentRequired,
                            "insufficient_credits",
                            $"Parsing {adding} document(s) costs {price.Credits * adding} credits ({price.Credits} each) and the organization has {Math.Max(0, (await ledger.BalanceAsync(tenant.CustomerId, CancellationToken.None)).Available)} available. Add credits and try again."),
                    };
                }

                holds.Add(held.ReservationId!.Value);
            }

            // Counted again with this request's holds in: of two requests racing for the last places, the one that counts
            // second sees all of the other's holds (taken before the other counted) and is refused; both can never pass.
            await EnsureUnderLimitAsync(tenant, adding, removing, holding: adding, cancellationToken);
        }
        catch
        {
            await holds.DisposeAsync();
            throw;
        }

        return holds;
    }

    /// <summary>
    /// 409 when the documents recorded, the uploads under way (<paramref name="holding"/> of them this request's own)
    /// and the <paramref name="adding"/> less <paramref name="removing"/> would pass the subscription's limit.
    /// </summary>
    private async Task EnsureUnderLimitAsync(KnowledgeTenant tenant, int adding, int removing, int holding, CancellationToken cancellationToken)
    {
        var limit = options.CurrentValue.MaxDocumentsPerSubscription;
        var (recorded, underway) = await CountPlacesAsync(tenant.SubscriptionId, cancellationToken);
        var others = Math.Max(0, underway - holding);
        if (recorded + others - removing + adding > limit)
        {
            var elsewhere = others > 0 ? $" and {others} more are being added" : string.Empty;
            throw new KnowledgeException(
                StatusCodes.Status409Conflict,
                "document_limit_reached",
                $"The knowledge base holds {recorded} of at most {limit} documents{elsewhere}; adding {adding} would exceed the limit. Delete documents first.");
        }
    }

    /// <summary>
    /// Documents recorded, and places held by uploads under way: the open parse holds no document has taken yet (a hold
    /// goes to its document in the insert that records it). One statement, so a document recorded meanwhile counts once.
    /// </summary>
    private async Task<(int Recorded, int Underway)> CountPlacesAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var counts = await db.Subscriptions.AsNoTracking()
            .Where(s => s.Id == subscriptionId)
            .Select(s => new
            {
                Recorded = db.KnowledgeDocuments.Count(d => d.SubscriptionId == subscriptionId),
                Underway = db.CreditReservations.Count(r => r.SubscriptionId == subscriptionId && r.ActionClass == ActionClass.RagDocument && r.ExpiresAt > now
                    && !db.KnowledgeDocuments.Any(d => d.SubscriptionId == subscriptionId && d.CreditReservationId == r.Id)),
            })
            .FirstOrDefaultAsync(cancellationToken);
        return counts is null ? (0, 0) : (counts.Recorded, counts.Underway);
    }

    internal ActionPrice Price(KnowledgeTenant tenant)
    {
        try
        {
            return priceBooks.Quote(tenant.OfferingUuid, ActionClass.RagDocument);
        }
        catch (Exception exception) when (exception is InvalidOperationException or Catalogue.CatalogueException)
        {
            throw new KnowledgeException(StatusCodes.Status503ServiceUnavailable, "pricing_unavailable", "The offering's price book cannot be read right now; try again later.", innerException: exception);
        }
    }

    /// <summary>
    /// Uploads the files one by one (a failure leaves the earlier ones recorded), records each document, then
    /// starts parsing the new ones. A parse that cannot be started now is started by the next poll.
    /// </summary>
    /// <param name="fence">Run in each record's save transaction before it, by work under a lease (<see cref="DatabaseLeaseHolding.FenceAsync"/>): a save it refuses is undone like a failed one.</param>
    public async Task<IReadOnlyList<KnowledgeDocument>> AddAsync(KnowledgeTenant tenant, IReadOnlyList<(KnowledgeFile File, DocumentOrigin Origin)> files, ParseHolds holds, CancellationToken cancellationToken,
        Func<AdapterDbContext, CancellationToken, Task>? fence = null)
    {
        var added = new List<KnowledgeDocument>();
        foreach (var (file, origin) in files)
        {
            Document uploaded;
            try
            {
                // Streamed from where it is (an upload's temporary file): a request of many large files never sits in memory whole.
                await using var content = file.Open();
                var part = new StreamPart(content, file.FileName, file.ContentType);
                var answer = await Ragflow.UploadDocumentsAsync(tenant.DatasetId, [part], cancellationToken);
                uploaded = answer.Data is { Count: > 0 } data
                    ? data[0]
                    : throw new KnowledgeException(StatusCodes.Status502BadGateway, "knowledge_upstream_error", $"The knowledge base did not confirm '{Shorten(file.FileName)}'; list the documents before trying again.");
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                logger.LogWarning(exception, "Uploading a document of subscription {SubscriptionId} to RAGFlow failed", tenant.SubscriptionId);
                // The files before this one are recorded: they are parsed as if the request had ended here.
                await StartParsingAsync(tenant, added, cancellationToken);
                throw exception as KnowledgeException ?? Upstream($"Uploading '{Shorten(file.FileName)}' failed", exception, added.Count, fileReasons: true);
            }

            var now = clock.GetUtcNow();
            var hold = holds.Take();
            var document = new KnowledgeDocument
            {
                Id = Guid.CreateVersion7(now),
                SubscriptionId = tenant.SubscriptionId,
                ConnectorId = origin.ConnectorId,
                Source = origin.Source,
                ExternalId = origin.ExternalId,
                SourceVersion = origin.Version,
                SourceUrl = origin.SourceUrl,
                Name = uploaded.Name ?? file.FileName,
                RagflowDocumentId = uploaded.Id,
                SizeBytes = uploaded.Size ?? file.Length,
                Status = ParseStates.FromRagflow(uploaded.Run),
                Progress = 0,
                CreditReservationId = hold,
                CreatedAt = now,
                UpdatedAt = now,
            };
            try
            {
                // Uploaded, it is recorded even if the caller leaves now: an unrecorded copy is served, but never charged.
                await using var db = await dbs.CreateDbContextAsync(CancellationToken.None);
                db.KnowledgeDocuments.Add(document);
                await SaveAsync(db, fence);
            }
            catch (DatabaseLeaseLostException)
            {
                // The work's lease is another's now: its successor adds the page, so this copy must not stay beside it.
                logger.LogWarning("Document {RagflowDocumentId} of subscription {SubscriptionId} was not recorded: the lease of the work adding it was taken over; it is taken out of RAGFlow again", uploaded.Id, tenant.SubscriptionId);
                await ForgetUnrecordedAsync(tenant, uploaded.Id, hold, holds);
                throw;
            }
            catch (Exception exception)
            {
                logger.LogError(exception, "Recording document {RagflowDocumentId} of subscription {SubscriptionId} failed; it is taken out of RAGFlow again", uploaded.Id, tenant.SubscriptionId);
                await ForgetUnrecordedAsync(tenant, uploaded.Id, hold, holds);
                await StartParsingAsync(tenant, added, cancellationToken);
                throw;
            }

            presence.Added(tenant.SubscriptionId);

            logger.LogInformation("Added document {DocumentId} ({RagflowDocumentId}, {Source}) to the knowledge base of subscription {SubscriptionId}",
                document.Id, document.RagflowDocumentId, document.Source, tenant.SubscriptionId);
            added.Add(document);
        }

        await StartParsingAsync(tenant, added, cancellationToken);
        return added;
    }

    /// <summary>Saves what <paramref name="db"/> tracks, on no caller's token; with a fence, in one transaction after it.</summary>
    private static async Task SaveAsync(AdapterDbContext db, Func<AdapterDbContext, CancellationToken, Task>? fence)
    {
        if (fence is null)
        {
            await db.SaveChangesAsync(CancellationToken.None);
            return;
        }

        await using var transaction = await db.Database.BeginTransactionAsync(CancellationToken.None);
        await fence(db, CancellationToken.None);
        await db.SaveChangesAsync(CancellationToken.None);
        await transaction.CommitAsync(CancellationToken.None);
    }

    /// <summary>
    /// Undoes the upload of a document whose record could not be saved: no record means no charge, ever, so its copy
    /// leaves RAGFlow (no answer draws on it) and its hold goes back with those no document took, released when the
    /// request's holds are disposed instead of when it expires. A copy RAGFlow will not delete now stays, unrecorded.
    /// </summary>
    private async Task ForgetUnrecordedAsync(KnowledgeTenant tenant, string ragflowDocumentId, Guid? hold, ParseHolds holds)
    {
        if (hold is { } id)
        {
            holds.Add(id);
        }

        try
        {
            await DeleteFromRagflowAsync(tenant, [ragflowDocumentId], CancellationToken.None);
        }
        catch (Exception exception)
        {
            // Best effort, on no caller's token (a cancellation here is a timeout): the save's own failure is what the caller sees.
            logger.LogError(exception, "RAGFlow document {RagflowDocumentId} of subscription {SubscriptionId} has no record and could not be deleted; delete it by hand",
                ragflowDocumentId, tenant.SubscriptionId);
        }
    }

    /// <summary>Starts parsing the documents that may be parsed (never a DONE one: that would parse, and cost, twice).</summary>
    internal async Task StartParsingAsync(KnowledgeTenant tenant, IReadOnlyList<KnowledgeDocument> documents, CancellationToken cancellationToken)
    {
        var ready = documents.Where(d => ParseStates.MayParse(d.Status)).ToList();
        if (ready.Count == 0)
        {
            return;
        }

        try
        {
            foreach (var batch in ready.Chunk(100))
            {
                await Ragflow.ParseDocumentsAsync(tenant.DatasetId, new ParseRequest { Document_ids = batch.Select(d => d.RagflowDocumentId).ToList() }, cancellationToken);
            }
        }
        catch (Exception exception) when (exception is not OperationCanceledException)
        {
            // The documents stay UNSTART with no attempt: the next poll starts them.
            logger.LogWarning(exception, "Starting to parse {Count} document(s) of subscription {SubscriptionId} failed; the next poll retries", ready.Count, tenant.SubscriptionId);
            return;
        }

        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var ids = ready.Select(d => d.Id).ToList();
        var rows = await db.KnowledgeDocuments.Where(d => ids.Contains(d.Id)).ToListAsync(CancellationToken.None);
        foreach (var row in rows)
        {
            row.Status = ParseStates.Running;
            row.Progress = 0;
            row.Error = null;
            row.ParseStartedAt = now;
            row.ParseAttempts++;
            row.UpdatedAt = now;
            var shown = ready.First(d => d.Id == row.Id);
            (shown.Status, shown.Progress, shown.Error, shown.ParseStartedAt, shown.ParseAttempts, shown.UpdatedAt) = (row.Status, 0, null, now, row.ParseAttempts, now);
        }

        await db.SaveChangesAsync(CancellationToken.None);
    }

    /// <summary>
    /// Every document of the dataset as RAGFlow reports it, by RAGFlow id: pages of <see cref="ListPageSize"/> (RAGFlow's
    /// maximum) until a short page, the reported total, or a page with nothing new (a server that ignored paging
    /// would otherwise be read forever). An error answer throws; nothing half-read is returned.
    /// </summary>
    internal async Task<Dictionary<string, Document>> ListRemoteAsync(string datasetId, CancellationToken cancellationToken)
    {
        var all = new Dictionary<string, Document>(StringComparer.Ordinal);
        for (var page = 1; ; page++)
        {
            var answer = await Ragflow.ListDocumentsAsync(datasetId, page, ListPageSize, cancellationToken);
            var docs = answer?.Data?.Docs ?? [];
            var before = all.Count;
            foreach (var doc in docs.Where(d => !string.IsNullOrEmpty(d.Id)))
            {
                all[doc.Id] = doc;
            }

            var total = answer?.Data?.Total ?? 0;
            if (docs.Count < ListPageSize || all.Count >= total || all.Count == before)
            {
                return all;
            }
        }
    }

    /// <summary>
    /// One document as RAGFlow reports it, or null when RAGFlow no longer holds it. A page read can miss a document that
    /// is there (the pages shift when a document before it is deleted meanwhile): this asks by id before anything is
    /// concluded from its absence.
    /// </summary>
    internal async Task<Document?> FindRemoteAsync(string datasetId, string ragflowDocumentId, CancellationToken cancellationToken)
    {
        try
        {
            var answer = await Ragflow.FindDocumentAsync(datasetId, ragflowDocumentId, cancellationToken);
            return answer?.Data?.Docs?.FirstOrDefault(d => d.Id == ragflowDocumentId);
        }
        catch (Exception exception) when (RagflowException.Find(exception) is { IsNotFound: true })
        {
            return null;
        }
    }

    public async Task<IReadOnlyList<KnowledgeDocument>> ListAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var documents = await db.KnowledgeDocuments.AsNoTracking().Where(d => d.SubscriptionId == subscriptionId).ToListAsync(cancellationToken);
        return documents.OrderBy(d => d.CreatedAt).ThenBy(d => d.Id).ToList();
    }

    /// <summary>Deletes a document of the subscription from RAGFlow and the records; one already gone from RAGFlow is simply forgotten.</summary>
    public async Task DeleteAsync(KnowledgeTenant tenant, Guid documentId, CancellationToken cancellationToken)
    {
        KnowledgeDocument document;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            document = await db.KnowledgeDocuments.AsNoTracking().FirstOrDefaultAsync(d => d.Id == documentId && d.SubscriptionId == tenant.SubscriptionId, cancellationToken)
                ?? throw new KnowledgeException(StatusCodes.Status404NotFound, "document_not_found", "The knowledge base has no such document.", "id");
        }

        await RemoveAsync(tenant, [document], "the document was deleted before it was parsed", cancellationToken);
        logger.LogInformation("Deleted document {DocumentId} ({RagflowDocumentId}) of subscription {SubscriptionId}", document.Id, document.RagflowDocumentId, tenant.SubscriptionId);
    }

    /// <summary>
    /// Takes documents out of RAGFlow, then out of the records, and gives back the parse holds of those not yet charged
    /// (<paramref name="reason"/> goes on the release). A failure part-way leaves the records of the rest, so doing it
    /// again finishes the job: documents already gone from RAGFlow are simply forgotten.
    /// </summary>
    /// <param name="fence">As for <see cref="AddAsync"/>: run in the transaction that deletes the records, before it.</param>
    internal async Task RemoveAsync(KnowledgeTenant tenant, IReadOnlyList<KnowledgeDocument> documents, string reason, CancellationToken cancellationToken,
        Func<AdapterDbContext, CancellationToken, Task>? fence = null)
    {
        await DeleteFromRagflowAsync(tenant, documents.Select(d => d.RagflowDocumentId).ToList(), cancellationToken);
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            var ids = documents.Select(d => d.Id).ToList();
            await using var transaction = fence is null ? null : await db.Database.BeginTransactionAsync(CancellationToken.None);
            if (fence is not null)
            {
                await fence(db, CancellationToken.None);
            }

            await db.KnowledgeDocuments.Where(d => ids.Contains(d.Id)).ExecuteDeleteAsync(CancellationToken.None);
            if (transaction is not null)
            {
                await transaction.CommitAsync(CancellationToken.None);
            }
        }

        // Only after the records are gone: a poll that finds a hold given back and its record gone knows the removal
        // closed it, and charges nothing (a record still there means the hold expired, and the parse is charged directly).
        await ReleaseHoldsAsync(documents, reason);
    }

    /// <summary>Whether the subscription has any document record, in whatever state.</summary>
    internal async Task<bool> HasRecordsAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.KnowledgeDocuments.AnyAsync(d => d.SubscriptionId == subscriptionId, cancellationToken);
    }

    /// <summary>
    /// Forgets every document record of the subscription, connector pages with their versions (the next sync adds
    /// them again), when its dataset is gone from RAGFlow with them. Call it only once their parses are closed
    /// (<see cref="ParseMonitor.CloseForRemovalAsync"/>): no hold is given back here. Returns how many it forgot.
    /// </summary>
    internal async Task<int> ForgetAllAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        int forgotten;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            forgotten = await db.KnowledgeDocuments.Where(d => d.SubscriptionId == subscriptionId).ExecuteDeleteAsync(CancellationToken.None);
        }

        presence.Emptied(subscriptionId);
        return forgotten;
    }

    /// <summary>Gives back the parse holds of documents that will not be charged (failed, deleted, replaced); one that cannot be given back now expires.</summary>
    internal async Task ReleaseHoldsAsync(IEnumerable<KnowledgeDocument> documents, string reason)
    {
        foreach (var document in documents.Where(d => d.CreditReservationId is not null && d.ChargedAt is null))
        {
            try
            {
                await ledger.ReleaseAsync(document.CreditReservationId!.Value, reason, CancellationToken.None);
                document.CreditReservationId = null;
            }
            catch (Exception exception)
            {
                logger.LogWarning(exception, "The parse hold of document {DocumentId} could not be given back now; it is released when it expires", document.Id);
            }
        }
    }

    internal async Task DeleteFromRagflowAsync(KnowledgeTenant tenant, IReadOnlyList<string> ragflowIds, CancellationToken cancellationToken)
    {
        // One by one: RAGFlow deletes nothing when any id of a batch is unknown.
        foreach (var id in ragflowIds)
        {
            try
            {
                await Ragflow.DeleteDocumentsAsync(tenant.DatasetId, new DeleteByIdsRequest { Ids = [id] }, cancellationToken);
            }
            catch (Exception exception) when (RagflowException.Find(exception) is { IsNotFound: true })
            {
                logger.LogInformation("RAGFlow document {RagflowDocumentId} was already gone", id);
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                logger.LogWarning(exception, "Deleting RAGFlow document {RagflowDocumentId} of subscription {SubscriptionId} failed", id, tenant.SubscriptionId);
                throw Upstream("Deleting the document from the knowledge base failed", exception, 0);
            }
        }
    }

    /// <summary>
    /// The buyer's 502: a fixed message, plus only the reasons RAGFlow gives for an uploaded file itself (<see cref="UpstreamFileReason"/>).
    /// RAGFlow's full answer (ids, exception text) is for the log, which the callers write.
    /// </summary>
    private static KnowledgeException Upstream(string what, Exception exception, int alreadyAdded, bool fileReasons = false)
    {
        var reason = fileReasons ? UpstreamFileReason.Of(RagflowException.Find(exception)) : null;
        var detail = reason is null ? "." : $": {reason}";
        var done = alreadyAdded > 0 ? $" {alreadyAdded} earlier file(s) of this request were added." : string.Empty;
        return new KnowledgeException(StatusCodes.Status502BadGateway, "knowledge_upstream_error", $"{what}{detail} Try again later.{done}", innerException: exception);
    }

    internal static string Shorten(string text, int max = 120) => text.Length <= max ? text : text[..(max - 1)] + "…";

    private static string Megabytes(long bytes) => $"{bytes / 1024d / 1024d:0.#} MB";
}

/// <summary>
/// Credits set aside for parsing the documents of one request, one ledger hold per document. Each recorded
/// document takes one (<see cref="Take"/>); disposing gives back those no document took.
/// </summary>
public sealed class ParseHolds : IAsyncDisposable
{
    private readonly CreditLedger _ledger;
    private readonly ILogger _logger;
    private readonly Queue<Guid> _unused;

    internal ParseHolds(CreditLedger ledger, ILogger logger, IEnumerable<Guid> holds)
    {
        _ledger = ledger;
        _logger = logger;
        _unused = new Queue<Guid>(holds);
    }

    /// <summary>A hold no document has: newly taken, or given back by a document whose record could not be saved.</summary>
    internal void Add(Guid reservationId) => _unused.Enqueue(reservationId);

    /// <summary>The next hold for a document being recorded (each upload took one per document, free parses a hold of 0).</summary>
    internal Guid? Take() => _unused.TryDequeue(out var id) ? id : null;

    public async ValueTask DisposeAsync()
    {
        while (_unused.TryDequeue(out var id))
        {
            try
            {
                await _ledger.ReleaseAsync(id, "the upload did not add the document", CancellationToken.None);
            }
            catch (Exception exception)
            {
                // Never hide the request's own failure; the hold expires by itself.
                _logger.LogWarning(exception, "A parse hold could not be given back now; it is released when it expires");
            }
        }
    }
}
