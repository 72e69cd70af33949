using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Knowledge.Documents;

/// <summary>
/// Follows parses in RAGFlow: copies run state, progress and failure messages onto the records, charges a
/// document once when it first reaches DONE (ledger request id <c>doc:{RAGFlow id}</c>, so a repeated poll or
/// a restart between charging and recording replays instead of charging again), starts parses an upload
/// could not start, keeps the credit hold of a parse still running from expiring, and restarts a parse stuck longer
/// than <see cref="KnowledgeOptions.StuckAfter"/> once.
/// </summary>
public sealed class ParseMonitor(
    IDbContextFactory<AdapterDbContext> dbs,
    KnowledgeBase knowledge,
    CreditLedger ledger,
    IOptionsMonitor<KnowledgeOptions> options,
    TimeProvider clock,
    ILogger<ParseMonitor> logger) : IDisposable
{
    private readonly SemaphoreSlim _oneAtATime = new(1, 1);

    /// <summary>The expiry this replica last gave each running parse's hold (see <see cref="KeepHoldAsync"/>); used under <see cref="_oneAtATime"/>.</summary>
    private readonly Dictionary<Guid, DateTimeOffset> _holdsKeptUntil = [];

    /// <summary>One pass over every subscription with documents not yet settled. Returns how many documents changed.</summary>
    public async Task<int> PollAsync(CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            // A hold past the expiry kept for it is settled, released or swept by now: its entry is of no more use.
            var polledAt = clock.GetUtcNow();
            foreach (var hold in _holdsKeptUntil.Where(kept => kept.Value < polledAt).Select(kept => kept.Key).ToList())
            {
                _holdsKeptUntil.Remove(hold);
            }

            List<Guid> subscriptions;
            await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
            {
                subscriptions = await db.KnowledgeDocuments.AsNoTracking()
                    .Where(IsPending)
                    .Select(d => d.SubscriptionId).Distinct().ToListAsync(cancellationToken);
            }

            var changed = 0;
            foreach (var subscription in subscriptions)
            {
                try
                {
                    changed += await PollSubscriptionAsync(subscription, cancellationToken);
                }
                catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    // One subscription's trouble (RAGFlow refusing its dataset, a concurrent delete) must not stop the others.
                    logger.LogWarning(exception, "Polling the parses of subscription {SubscriptionId} failed; the next poll retries", subscription);
                }
            }

            return changed;
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private async Task<int> PollSubscriptionAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        KnowledgeTenant tenant;
        try
        {
            tenant = await knowledge.TenantAsync(subscriptionId, forWrite: false, cancellationToken);
        }
        catch (KnowledgeException exception)
        {
            // An upload that finished while its subscription was being terminated records its document after the
            // removal closed the others: with the dataset gone, it is closed now (its hold given back), not left pending.
            if (await EndedWithoutDatasetAsync(subscriptionId, cancellationToken))
            {
                return await CloseAsync(subscriptionId, null, cancellationToken);
            }

            logger.LogDebug("Skipping the parses of subscription {SubscriptionId}: {Reason}", subscriptionId, exception.Message);
            return 0;
        }

        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var pending = await Pending(db, subscriptionId).ToListAsync(cancellationToken);
        if (pending.Count == 0)
        {
            return 0;
        }

        var remote = await knowledge.ListRemoteAsync(tenant.DatasetId, cancellationToken);
        var now = clock.GetUtcNow();
        var stuckAfter = options.CurrentValue.StuckAfter;
        var toStart = new List<KnowledgeDocument>();
        var changed = 0;
        foreach (var document in pending)
        {
            var before = (document.Status, document.Progress, document.Error, document.ChargedAt);
            if (!remote.TryGetValue(document.RagflowDocumentId, out var state)
                && await knowledge.FindRemoteAsync(tenant.DatasetId, document.RagflowDocumentId, cancellationToken) is { } found)
            {
                state = found; // missed by the page read (a deletion shifted the pages), not gone
            }

            if (state is null)
            {
                document.Status = ParseStates.Fail;
                document.Error = document.ConnectorId is null
                    ? "The document is no longer in the knowledge base; upload it again."
                    : "The document is no longer in the knowledge base; the connector's next sync adds it again.";
                await knowledge.ReleaseHoldsAsync([document], "the document left the knowledge base before it was parsed");
            }
            else if (document.Status == ParseStates.Unstart && ParseStates.MayParse(ParseStates.FromRagflow(state.Run))
                && (document.ParseAttempts == 0 || AwaitsRestart(document, state)))
            {
                toStart.Add(document);
            }
            else
            {
                await ApplyAsync(tenant, document, state, now, stuckAfter, cancellationToken);
            }

            if (before != (document.Status, document.Progress, document.Error, document.ChargedAt))
            {
                document.UpdatedAt = now;
                changed++;
            }
        }

        await SaveSkippingDeletedAsync(db, subscriptionId);
        if (toStart.Count > 0)
        {
            await knowledge.StartParsingAsync(tenant, toStart, cancellationToken);
            changed += toStart.Count;
        }

        return changed;
    }

    private async Task ApplyAsync(KnowledgeTenant tenant, KnowledgeDocument document, Document state, DateTimeOffset now, TimeSpan stuckAfter, CancellationToken cancellationToken)
    {
        if (!ParseStates.IsKnown(state.Run))
        {
            logger.LogWarning("RAGFlow reports the unknown run state {Run} for document {DocumentId} of subscription {SubscriptionId}; it is followed as a parse still running",
                state.Run, document.Id, tenant.SubscriptionId);
        }

        switch (ParseStates.FromRagflow(state.Run))
        {
            case ParseStates.Done:
                document.Status = ParseStates.Done;
                document.Progress = 1;
                document.Error = null;
                if (document.ChargedAt is null)
                {
                    await ChargeAsync(tenant, document, now, cancellationToken);
                }

                break;

            case ParseStates.Fail:
                // Nothing is charged for a failed parse.
                document.Status = ParseStates.Fail;
                document.Progress = 0;
                document.Error = FailureReason(state.Progress_msg);
                await knowledge.ReleaseHoldsAsync([document], "parsing failed");
                logger.LogInformation("Parsing document {DocumentId} of subscription {SubscriptionId} failed: {Reason}", document.Id, tenant.SubscriptionId, state.Progress_msg);
                break;

            case ParseStates.Cancel:
                document.Status = ParseStates.Cancel;
                document.Progress = 0;
                document.Error = "Parsing was stopped in the knowledge base.";
                await knowledge.ReleaseHoldsAsync([document], "parsing was stopped");
                break;

            case ParseStates.Running:
                document.Status = ParseStates.Running;
                var progress = Math.Clamp(state.Progress ?? 0, 0, 1);
                // The watchdog counts from the last progress (a 500-page scan can take hours; only a parse that stopped
                // moving is stuck), or from now for a parse started by a call whose answer was lost.
                if (document.ParseStartedAt is null || progress > document.Progress)
                {
                    document.ParseStartedAt = now;
                }

                document.Progress = progress;
                document.ParseAttempts = Math.Max(document.ParseAttempts, 1);
                if (document.ParseStartedAt is { } started && now - started > stuckAfter)
                {
                    await RestartStuckAsync(tenant, document, now, stuckAfter, cancellationToken);
                }

                if (document.Status == ParseStates.Running)
                {
                    await KeepHoldAsync(tenant, document, now, cancellationToken);
                }

                break;

            default:
                document.Status = ParseStates.Unstart;
                // Asked to parse, yet RAGFlow never started it (the task was lost): the watchdog asks again, then gives up.
                if (document.ParseAttempts > 0 && document.ParseStartedAt is { } asked && now - asked > stuckAfter)
                {
                    await RestartStuckAsync(tenant, document, now, stuckAfter, cancellationToken, running: false);
                }

                break;
        }
    }

    /// <summary>
    /// A parse RAGFlow still runs keeps its hold: a healthy parse may run longer than the hold's lifetime (a 500-page
    /// scan takes hours), and a hold the sweeper gave back would leave the parse to a direct charge the organization may
    /// no longer be able to pay. The watchdog bounds a parse that stopped moving, so this never keeps a hold forever.
    /// To stay cheap the hold is moved only once less than half of <see cref="KnowledgeOptions.ParseHoldLifetime"/> is left.
    /// </summary>
    private async Task KeepHoldAsync(KnowledgeTenant tenant, KnowledgeDocument document, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (document.CreditReservationId is not { } hold)
        {
            return;
        }

        var lifetime = options.CurrentValue.ParseHoldLifetime;
        if (_holdsKeptUntil.TryGetValue(hold, out var keptUntil) && keptUntil - now > lifetime / 2)
        {
            return;
        }

        try
        {
            // False when the hold is gone (settled, released) or lives longer already: either way nothing is left to do.
            await ledger.ExtendHoldAsync(hold, now + lifetime, cancellationToken);
            _holdsKeptUntil[hold] = now + lifetime;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Left as it is: the hold lives on until its current expiry, and the next poll tries again.
            logger.LogWarning(exception, "Keeping the credit hold of the running parse of document {DocumentId} of subscription {SubscriptionId} failed; the next poll tries again",
                document.Id, tenant.SubscriptionId);
        }
    }

    /// <param name="terminating">
    /// Charged by the subscription's termination (<see cref="CloseAsync"/>): a direct charge is accepted while the
    /// subscription is Terminating, and one the organization cannot pay leaves the document to be cancelled with its
    /// knowledge base instead of being taken out of RAGFlow first; one that cannot be made for now fails the removal
    /// (<see cref="ChargeLater"/>).
    /// </param>
    private async Task ChargeAsync(KnowledgeTenant tenant, KnowledgeDocument document, DateTimeOffset now, CancellationToken cancellationToken, bool terminating = false)
    {
        if (document.CreditReservationId is { } hold)
        {
            if (await SettleHoldAsync(hold, cancellationToken) is { } charged)
            {
                document.ChargedAt = now;
                document.CreditsCharged = charged;
                logger.LogInformation("Charged {Credits} credits held for parsing document {DocumentId} of subscription {SubscriptionId}", charged, document.Id, tenant.SubscriptionId);
                return;
            }

            // Given back by a delete (the buyer's, or a connector's removal), which takes the record out before it releases
            // the hold: the delete closed the hold before this settle could, so the parse is not charged (the direct charge
            // below would charge it after all, for a hold given back).
            if (!await IsRecordedAsync(document.Id, cancellationToken))
            {
                logger.LogInformation("Document {DocumentId} of subscription {SubscriptionId} was deleted before its parse was charged: its hold was given back, nothing is charged",
                    document.Id, tenant.SubscriptionId);
                return;
            }

            // Otherwise it outlived its lifetime (KnowledgeOptions.ParseHoldLifetime; the adapter was down when the parse
            // ended, say) and the sweeper gave it back. Charge as if there had been none.
            document.CreditReservationId = null;
        }

        ActionPrice price;
        try
        {
            price = knowledge.Price(tenant);
        }
        catch (KnowledgeException exception)
        {
            ChargeLater(tenant, document, "its price book cannot be read", terminating, exception);
            return;
        }

        var result = await ledger.ChargeAsync(tenant.CustomerId, tenant.SubscriptionId, tenant.OfferingUuid, ActionClass.RagDocument, price.Credits, price.PriceBookVersion, ChargeRequestId(document.RagflowDocumentId), terminating, cancellationToken);
        if (result.IsCharged)
        {
            document.ChargedAt = now;
            document.CreditsCharged = result.Credits;
            logger.LogInformation("Charged {Credits} credits for parsing document {DocumentId} of subscription {SubscriptionId}{Replay}",
                result.Credits, document.Id, tenant.SubscriptionId, result.Status == ChargeStatus.Replayed ? " (charged before: replayed)" : string.Empty);
        }
        else if ((result.Refusal is CreditRefusal.InsufficientCredits or CreditRefusal.OfferingNotCovered) && !terminating)
        {
            await WithdrawUnpaidAsync(tenant, document, price.Credits, cancellationToken);
        }
        else if (terminating && result.Refusal != CreditRefusal.FundingUnavailable)
        {
            // The organization cannot pay, or the subscription is no longer Terminating (a termination's charge is refused
            // as not servable only then; KeyRevoked answers holds, never a charge): retrying would not change that, so the
            // document is cancelled with its knowledge base, nothing charged.
            logger.LogWarning("Parsing document {DocumentId} of subscription {SubscriptionId} could not be charged ({Refusal}) before the subscription ended: it is cancelled, nothing charged",
                document.Id, tenant.SubscriptionId, result.Refusal);
        }
        else
        {
            // Waldur's funding unreadable for now, or the subscription paused (its agent answers nothing meanwhile).
            ChargeLater(tenant, document, $"refused: {result.Refusal}", terminating);
        }
    }

    /// <summary>
    /// A parse done that cannot be charged for now (Waldur's funding or the price book unreadable, the subscription
    /// paused): the next poll tries again. At termination no poll follows, so the removal fails and is retried
    /// instead (a transient provisioning failure, as when a hold cannot be given back), not cancelled uncharged.
    /// </summary>
    private void ChargeLater(KnowledgeTenant tenant, KnowledgeDocument document, string reason, bool terminating, Exception? exception = null)
    {
        if (terminating)
        {
            throw new TransientProvisioningException($"A parsed document could not be charged before the knowledge base is removed ({reason}); the removal is retried.", exception);
        }

        logger.LogWarning(exception, "Parsing document {DocumentId} of subscription {SubscriptionId} could not be charged ({Reason}); the next poll tries again",
            document.Id, tenant.SubscriptionId, reason);
    }

    /// <summary>
    /// The upload set the credits aside: charging is settling that hold (a repeated settle charges nothing more). The
    /// credits it was settled for, now or before; null when it was given back and charged nothing.
    /// </summary>
    private async Task<long?> SettleHoldAsync(Guid hold, CancellationToken cancellationToken)
    {
        // Settled by an overlapping poll (a clustered job recovered from a node that still runs) answers AlreadySettled.
        var settled = await ledger.SettleAsync(hold, null, cancellationToken);
        return settled.Status is SettleStatus.Settled or SettleStatus.AlreadySettled ? settled.Credits : null;
    }

    /// <summary>
    /// Closes the parses of a subscription whose knowledge base is about to be deleted (its termination): a parse
    /// RAGFlow reports done is charged as the poll charges it (from its hold, or directly once if its hold was given
    /// back already, its request id replaying a charge made before), and every other parse's hold is given back now,
    /// its document cancelled. Once the dataset is gone no poll follows these documents, so otherwise their credits
    /// stayed set aside until the holds expired, their records stayed pending, and a parse done since the last poll
    /// was never charged. Run before the final usage report, so that it includes these charges. Returns how many it closed;
    /// throws <see cref="TransientProvisioningException"/> (nothing recorded, the removal retried) while a parse done
    /// cannot be charged for now.
    /// </summary>
    public async Task<int> CloseForRemovalAsync(Guid subscriptionId, string? datasetId, CancellationToken cancellationToken)
    {
        await _oneAtATime.WaitAsync(cancellationToken);
        try
        {
            return await CloseAsync(subscriptionId, datasetId, cancellationToken);
        }
        finally
        {
            _oneAtATime.Release();
        }
    }

    private async Task<int> CloseAsync(Guid subscriptionId, string? datasetId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var pending = await Pending(db, subscriptionId).ToListAsync(cancellationToken);
        if (pending.Count == 0)
        {
            return 0;
        }

        // Null when there is no dataset to read (none recorded, or RAGFlow no longer holds it): then no document is asked
        // for by id either, as each would only be "not found" too.
        var remote = datasetId is null ? null : await RemoteUnlessGoneAsync(datasetId, cancellationToken);
        var now = clock.GetUtcNow();
        KnowledgeTenant? tenant = null;
        foreach (var document in pending)
        {
            if (datasetId is not null && remote is not null && !remote.ContainsKey(document.RagflowDocumentId)
                && await knowledge.FindRemoteAsync(datasetId, document.RagflowDocumentId, cancellationToken) is { } found)
            {
                remote[document.RagflowDocumentId] = found;
            }

            var done = remote is not null && remote.TryGetValue(document.RagflowDocumentId, out var state) && ParseStates.FromRagflow(state.Run) == ParseStates.Done;
            if (done)
            {
                tenant ??= await knowledge.TenantAsync(subscriptionId, forWrite: false, cancellationToken);
                await ChargeAsync(tenant, document, now, cancellationToken, terminating: true);
            }
            else if (await ReleaseHoldForRemovalAsync(document, cancellationToken) is { } credits)
            {
                document.ChargedAt = now;
                document.CreditsCharged = credits;
            }

            if (document.ChargedAt is not null)
            {
                document.Status = ParseStates.Done;
                document.Progress = 1;
                document.Error = null;
            }
            else
            {
                document.Status = ParseStates.Cancel;
                document.Progress = 0;
                document.Error = done
                    ? "Parsing finished after the credits set aside for it had been given back, and it could not be charged before the subscription ended: nothing was charged."
                    : "The subscription ended before parsing finished: nothing was charged.";
                document.CreditReservationId = null;
            }

            document.UpdatedAt = now;
        }

        await db.SaveChangesAsync(CancellationToken.None);
        logger.LogInformation("Closed {Count} parse(s) of subscription {SubscriptionId} as its knowledge base is removed: {Charged} charged, the others' holds given back",
            pending.Count, subscriptionId, pending.Count(d => d.ChargedAt is not null));
        return pending.Count;
    }

    /// <summary>
    /// Saves a poll's states. A document deleted during the poll (by the buyer, or a connector's removal) has no row left
    /// to update, which fails the whole save: it is left out and the save tried again, so the other documents' states
    /// are saved by this poll, not the next. Nothing is lost with it: the delete gave its hold back, or found it settled
    /// by this poll (charged once).
    /// </summary>
    private async Task SaveSkippingDeletedAsync(AdapterDbContext db, Guid subscriptionId)
    {
        while (true)
        {
            try
            {
                await db.SaveChangesAsync(CancellationToken.None);
                return;
            }
            catch (DbUpdateConcurrencyException exception) when (exception.Entries.Count > 0)
            {
                foreach (var entry in exception.Entries)
                {
                    // A row still there was changed by someone else: that is a real conflict, left to the next poll as before.
                    if (entry.Entity is not KnowledgeDocument document || await entry.GetDatabaseValuesAsync(CancellationToken.None) is not null)
                    {
                        throw;
                    }

                    entry.State = EntityState.Detached;
                    logger.LogInformation("Document {DocumentId} of subscription {SubscriptionId} was deleted during the poll; its state is not saved", document.Id, subscriptionId);
                }
            }
        }
    }

    private async Task<bool> IsRecordedAsync(Guid documentId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.KnowledgeDocuments.AnyAsync(d => d.Id == documentId, cancellationToken);
    }

    private async Task<bool> EndedWithoutDatasetAsync(Guid subscriptionId, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.AsNoTracking().Where(s => s.Id == subscriptionId)
            .Select(s => new { s.State, s.RagflowDatasetId }).FirstOrDefaultAsync(cancellationToken);
        return subscription is null
            || (subscription.State is Core.Subscriptions.SubscriptionState.Terminating or Core.Subscriptions.SubscriptionState.Terminated && string.IsNullOrEmpty(subscription.RagflowDatasetId));
    }

    /// <summary>Gives back the hold of a parse not done; the credits it was charged if a poll settled it meanwhile, else null.</summary>
    private async Task<long?> ReleaseHoldForRemovalAsync(KnowledgeDocument document, CancellationToken cancellationToken)
    {
        if (document.CreditReservationId is not { } hold)
        {
            return null;
        }

        // Unlike ReleaseHoldsAsync, a failure is not left to the hold's expiry: the removal is retried instead.
        var released = await ledger.ReleaseAsync(hold, "the subscription ended before the parse finished", cancellationToken);
        // Settled meanwhile by a poll that saw the parse done after the list read here: charged, and so recorded.
        return released.Status == ReleaseStatus.AlreadySettled ? released.Credits : null;
    }

    /// <summary>The dataset's documents as RAGFlow reports them; null when RAGFlow no longer holds the dataset (deleted before: by a removal, or in RAGFlow itself).</summary>
    private async Task<Dictionary<string, Document>?> RemoteUnlessGoneAsync(string datasetId, CancellationToken cancellationToken)
    {
        try
        {
            return await knowledge.ListRemoteAsync(datasetId, cancellationToken);
        }
        catch (Exception exception) when (RagflowException.Find(exception) is { IsNotFound: true })
        {
            return null;
        }
    }

    /// <summary>A document the monitor still follows: parsing, or parsed and not yet charged.</summary>
    private static readonly System.Linq.Expressions.Expression<Func<KnowledgeDocument, bool>> IsPending =
        d => d.Status == ParseStates.Unstart || d.Status == ParseStates.Running || (d.Status == ParseStates.Done && d.ChargedAt == null);

    private static IQueryable<KnowledgeDocument> Pending(AdapterDbContext db, Guid subscriptionId) =>
        db.KnowledgeDocuments.Where(d => d.SubscriptionId == subscriptionId).Where(IsPending);

    /// <summary>
    /// A parse that ended without its hold, which the organization cannot pay for now. Knowledge is not served on
    /// credit: the document leaves RAGFlow, so no answer draws on it, and is failed with the reason, nothing
    /// charged. Nothing charges it later either: a FAIL document is not polled, and its request id
    /// <c>doc:{RAGFlow id}</c> was never charged. Uploading it again holds its price like any upload (402 while
    /// credits are short); a connector's page is brought back by the connector's next sync. Until RAGFlow confirms
    /// the delete it stays DONE and unpaid, and the next poll charges it (credits may have come) or tries again.
    /// </summary>
    private async Task WithdrawUnpaidAsync(KnowledgeTenant tenant, KnowledgeDocument document, long price, CancellationToken cancellationToken)
    {
        try
        {
            await knowledge.DeleteFromRagflowAsync(tenant, [document.RagflowDocumentId], cancellationToken);
        }
        catch (KnowledgeException exception)
        {
            logger.LogWarning(exception, "Document {DocumentId} of subscription {SubscriptionId} is parsed but unpaid and could not be taken out of the knowledge base; the next poll tries again",
                document.Id, tenant.SubscriptionId);
            return;
        }

        document.Status = ParseStates.Fail;
        document.Progress = 0;
        document.Error = $"Parsing finished after the credits set aside for it had been given back, and the organization no longer had the {price} credits it costs: "
            + "the document was removed from the knowledge base and nothing was charged. Add credits, then upload it again.";
        logger.LogWarning("Document {DocumentId} of subscription {SubscriptionId} was parsed without a hold and the organization cannot pay for it: removed from the knowledge base, not charged",
            document.Id, tenant.SubscriptionId);
    }

    /// <summary>
    /// A parse RAGFlow never started cannot be stopped (RAGFlow refuses to stop what has not started), and a task it
    /// only delayed would parse the document later, after its hold was given back: so the document leaves RAGFlow
    /// before it is failed, as an unpaid one does. False (the next poll tries again) while RAGFlow refuses the delete.
    /// </summary>
    private async Task<bool> TakeOutUnstartedAsync(KnowledgeTenant tenant, KnowledgeDocument document, CancellationToken cancellationToken)
    {
        try
        {
            await knowledge.DeleteFromRagflowAsync(tenant, [document.RagflowDocumentId], cancellationToken);
        }
        catch (KnowledgeException exception)
        {
            logger.LogWarning(exception, "Document {DocumentId} of subscription {SubscriptionId} was never parsed and could not be taken out of the knowledge base; the next poll tries again",
                document.Id, tenant.SubscriptionId);
            return false;
        }

        return true;
    }

    public void Dispose() => _oneAtATime.Dispose();

    /// <summary>The ledger request id of a document's parse: the same document never pays twice.</summary>
    public static string ChargeRequestId(string ragflowDocumentId) => $"doc:{ragflowDocumentId}";

    private async Task RestartStuckAsync(KnowledgeTenant tenant, KnowledgeDocument document, DateTimeOffset now, TimeSpan stuckAfter, CancellationToken cancellationToken, bool running = true)
    {
        var request = new ParseRequest { Document_ids = [document.RagflowDocumentId] };
        try
        {
            if (running)
            {
                await knowledge.Ragflow.StopParsingAsync(tenant.DatasetId, request, cancellationToken);
            }
        }
        catch (Exception exception) when (RagflowException.Find(exception) is { IsTransient: false })
        {
            // It finished or failed between the list and the stop: the next poll sees that.
            logger.LogInformation(exception, "Stopping the stuck parse of document {DocumentId} was refused", document.Id);
            return;
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // RAGFlow failing for now (5xx, a timeout, an error code it answers with HTTP 200): the parse is left as it is,
            // still stuck, so the next poll stops it again; and the failure stays this document's, so the poll goes on to
            // the others and saves their states.
            logger.LogWarning(exception, "Stopping the stuck parse of document {DocumentId} of subscription {SubscriptionId} failed; the next poll tries again",
                document.Id, tenant.SubscriptionId);
            return;
        }

        if (document.ParseAttempts >= 2)
        {
            if (!running && !await TakeOutUnstartedAsync(tenant, document, cancellationToken))
            {
                return;
            }

            document.Status = ParseStates.Fail;
            document.Progress = 0;
            document.Error = $"Parsing made no progress for {Describe(stuckAfter)}, also after one restart, and was stopped. Delete the document and upload it again, or contact support.";
            // Nothing is charged for it, so its credits are free again now, not when its hold would expire.
            await knowledge.ReleaseHoldsAsync([document], "parsing was stuck and stopped");
            logger.LogWarning("Parse of document {DocumentId} of subscription {SubscriptionId} stuck twice: stopped and failed", document.Id, tenant.SubscriptionId);
            return;
        }

        try
        {
            await knowledge.Ragflow.ParseDocumentsAsync(tenant.DatasetId, request, cancellationToken);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Stopped, so RAGFlow now says CANCEL, which the next poll would take for a stop made in RAGFlow and close the
            // document for good. Left not started instead (see AwaitsRestart), the start path parses it again; and the
            // failure stays this document's, so the poll goes on to the others and saves their states.
            document.Status = ParseStates.Unstart;
            document.Progress = 0;
            document.Error = null;
            logger.LogWarning(exception, "Restarting the stuck parse of document {DocumentId} of subscription {SubscriptionId} failed; the next poll starts it again",
                document.Id, tenant.SubscriptionId);
            return;
        }

        document.Status = ParseStates.Running;
        document.Progress = 0;
        document.Error = null;
        document.ParseStartedAt = now;
        document.ParseAttempts++;
        logger.LogWarning("Parse of document {DocumentId} of subscription {SubscriptionId} made no progress for {StuckAfter}: stopped and started again", document.Id, tenant.SubscriptionId, stuckAfter);
    }

    /// <summary>
    /// A stuck parse the watchdog stopped whose restart failed (<see cref="RestartStuckAsync"/>): recorded not started
    /// after its first attempt while RAGFlow reports the stop's CANCEL. The start path parses it again, which counts
    /// the restart (attempt 2), so a parse stuck once more is failed, not restarted again.
    /// </summary>
    private static bool AwaitsRestart(KnowledgeDocument document, Document state) =>
        document.ParseAttempts == 1 && ParseStates.FromRagflow(state.Run) == ParseStates.Cancel;

    /// <summary>RAGFlow's progress_msg is a log, one line per step; the failure reason is its last line.</summary>
    /// <summary>
    /// The last line of RAGFlow's progress log, as buyers may read it (<see cref="UpstreamFileReason.Shown"/>: no ids, no
    /// exception text); the whole log goes to this adapter's log when the parse fails.
    /// </summary>
    internal static string FailureReason(string? progressLog)
    {
        var line = (progressLog ?? string.Empty).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        if (string.IsNullOrEmpty(line))
        {
            return "Parsing failed in the knowledge base without a reason.";
        }

        return UpstreamFileReason.Shown(line, 1000) ?? "Parsing failed in the knowledge base; the operator's log has the reason.";
    }

    private static string Describe(TimeSpan span) => span.TotalMinutes >= 1 ? $"{span.TotalMinutes:0.#} minutes" : $"{span.TotalSeconds:0.#} seconds";
}

/// <summary>The Quartz job that runs <see cref="ParseMonitor.PollAsync"/> (on one replica per firing when clustered).</summary>
[DisallowConcurrentExecution]
public sealed class PollKnowledgeParsesJob(ParseMonitor monitor) : IJob
{
    public static readonly JobKey Key = new("poll-knowledge-parses", "knowledge");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await monitor.PollAsync(cancellationToken);
}
