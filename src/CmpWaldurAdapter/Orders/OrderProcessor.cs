using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Forms;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Reports;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Refit;

namespace CmpWaldurAdapter.Orders;

/// <summary>What became of one look at an order.</summary>
public enum OrderOutcome
{
    /// <summary>Provisioned (or changed, or removed) and set to done in Waldur.</summary>
    Completed,

    /// <summary>Rejected for invalid input, with a comment for the buyer.</summary>
    Rejected,

    /// <summary>Failed permanently after approval and marked erred with a message, or stopped in Waldur (cancelled, rejected, erred) before it was done.</summary>
    Erred,

    /// <summary>Not the provider's turn (pending consumer, project or start date).</summary>
    Waiting,

    /// <summary>Not an order of ours, or already final: nothing to do.</summary>
    Ignored,

    /// <summary>Another process holds the order's lease right now.</summary>
    Busy,
}

/// <summary>A transient failure: the order stays as it is in Waldur and is tried again later.</summary>
public sealed class OrderDeferredException(string reason, Exception? inner = null) : Exception(reason, inner);

/// <summary>
/// Takes one Waldur order from <c>pending-provider</c> to <c>done</c>: validate → approve (or reject) →
/// persisted provisioning steps → backend id → report → done, only from <c>executing</c>. Every phase
/// and step is saved before the next begins, so a crash resumes where it stopped and repeats nothing.
/// </summary>
public sealed class OrderProcessor(
    IWaldurApi waldur,
    IDbContextFactory<AdapterDbContext> dbs,
    ServedOfferings catalog,
    OrderLeases leases,
    IEnumerable<ITenantProvisioner> provisioners,
    SubscriptionReporter reporter,
    AdapterMetrics metrics,
    TimeProvider clock,
    IOptionsMonitor<OrdersOptions> options,
    IOptionsMonitor<WaldurOptions> waldurOptions,
    ILogger<OrderProcessor> logger)
{
    internal const string RecordSubscriptionStep = "record-subscription";
    internal const string SetBackendIdStep = "set-backend-id";
    internal const string ActivateStep = "activate";
    internal const string ApplyConfigurationStep = "apply-configuration";
    internal const string BeginTerminationStep = "begin-termination";
    internal const string FinishTerminationStep = "finish-termination";
    internal const string SubmitReportStep = "submit-report";

    /// <summary>The <c>type</c> label of an order deferred before its type was known (Waldur could not be read, or named a type the adapter does not know).</summary>
    internal const string UnknownType = "unknown";

    /// <summary>The <c>type</c> label of the teardown of a resource Waldur terminated without a Terminate order (staff did).</summary>
    internal const string TerminatedInWaldurType = "TerminatedInWaldur";

    /// <summary>The <c>outcome</c> label of a deferred order: it stays as it is in Waldur and is tried again later.</summary>
    internal const string DeferredOutcome = "Deferred";

    public async Task<OrderOutcome> ProcessAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["OrderUuid"] = orderUuid });
        OrderDetails order;
        try
        {
            order = await waldur.GetOrderAsync(orderUuid, cancellationToken);
        }
        catch (ApiException exception) when (UpstreamFailures.IsNotFound(exception))
        {
            logger.LogWarning("Order {OrderUuid} does not exist in Waldur (or is not visible to the adapter); skipping", orderUuid);
            return OrderOutcome.Ignored;
        }
        catch (Exception exception) when (IsTransient(exception, cancellationToken) || IsWaldurCredentialRefusal(exception))
        {
            // Deferred before its type is known: counted all the same, or a Waldur outage would show no deferrals at all.
            throw Deferred(UnknownType, "Waldur could not be read: " + UpstreamFailures.Describe(exception), exception);
        }

        if (!catalog.Serves(order.Offering_uuid))
        {
            logger.LogDebug("Order {OrderUuid} belongs to offering {OfferingUuid}, which this adapter does not serve", orderUuid, order.Offering_uuid);
            return OrderOutcome.Ignored;
        }

        var state = Wire(order.State);
        if (!WaldurOrderStates.IsActionable(state))
        {
            // An order the adapter began and Waldur finished or stopped since (staff, or the provider's own people, between two
            // attempts) is still the adapter's to settle: under the lease, below. The one read of its record also tells
            // whether there is anything to stamp as settled (only a record not yet approved).
            var phase = WaldurOrderStates.IsFinal(state) ? await PhaseHereAsync(orderUuid, cancellationToken) : null;
            if (!IsUnsettled(phase))
            {
                logger.LogDebug("Order {OrderUuid} is {OrderState}: nothing for the provider to do", orderUuid, state);
                if (phase == OrderPhase.Received)
                {
                    await RecordSettledAsync(orderUuid, state, cancellationToken);
                }

                return WaldurOrderStates.IsFinal(state) ? OrderOutcome.Ignored : OrderOutcome.Waiting;
            }
        }

        var type = MapType(order.Type) ?? throw Deferred(UnknownType, $"Unknown order type '{order.Type}'.");
        var resourceUuid = order.Marketplace_resource_uuid ?? order.Resource_uuid
            ?? throw Deferred(type.ToString(), $"Order {orderUuid} names no resource yet.");
        // The leased work runs under the lease's token: it stops once another process took the order over.
        var run = await leases.RunOnOrderAsync(orderUuid, type, resourceUuid, order.Offering_uuid!.Value, async held =>
        {
            try
            {
                var outcome = await ProcessLeasedAsync(order, type, state!, resourceUuid, held);
                metrics.OrdersProcessed.WithLabels(type.ToString(), outcome.ToString()).Inc();
                return outcome;
            }
            catch (OrderDeferredException)
            {
                metrics.OrdersProcessed.WithLabels(type.ToString(), DeferredOutcome).Inc();
                throw;
            }
        }, cancellationToken);
        if (run.Busy)
        {
            logger.LogInformation("Order {OrderUuid} is being processed by another process", orderUuid);
            return OrderOutcome.Busy;
        }

        return run.Result;
    }

    /// <summary>
    /// Removes what a subscription has upstream when Waldur terminated its resource without a Terminate order reaching the
    /// adapter (staff did), once the resource sync has stopped serving it (<see cref="SubscriptionState.Terminating"/>):
    /// the Terminate order's own steps, under a lease like an order's (a record of its own, <see cref="TerminationWithoutOrder"/>),
    /// so it never runs beside an order of the resource. Each attempt runs every step (each looks before it deletes, so a
    /// repeat removes nothing twice, and a record left by an earlier termination of a restored resource skips none); a failed
    /// attempt is logged, counted and left to the resource sync's next sweep. Returns whether the subscription is now terminated.
    /// </summary>
    public async Task<bool> TearDownTerminatedAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        var id = TerminationWithoutOrder(resourceUuid);
        using var scope = logger.BeginScope(new Dictionary<string, object> { ["OrderUuid"] = id, ["ResourceUuid"] = resourceUuid });
        Guid offering;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            var found = await db.Subscriptions.AsNoTracking()
                .Where(s => s.ResourceUuid == resourceUuid && s.State == SubscriptionState.Terminating)
                .Select(s => (Guid?)s.OfferingUuid)
                .SingleOrDefaultAsync(cancellationToken);
            if (found is not { } known)
            {
                return false;
            }

            offering = known;
        }

        var run = await leases.RunOnResourceAsync(TearDown, resourceUuid, offering, async held =>
        {
            var outcome = await TearDownLeasedAsync(id, resourceUuid, held);
            if (outcome is not null)
            {
                metrics.OrdersProcessed.WithLabels(TerminatedInWaldurType, outcome).Inc();
            }

            return outcome == nameof(OrderOutcome.Completed);
        }, cancellationToken);
        if (run.Busy)
        {
            logger.LogInformation("Resource {ResourceUuid} is being worked on by an order or another process; its teardown waits for the next sweep", resourceUuid);
            return false;
        }

        return run.Result;
    }

    /// <summary>
    /// Records that the resource's teardown (<see cref="TearDownTerminatedAsync"/>) is due, before its subscription is marked
    /// terminating: a teardown this process had queued but not begun when it stopped is then still known as begun once Waldur
    /// has erased the resource (<see cref="ResumeTearDownAsync"/>). A record completed by an earlier termination of a restored
    /// resource is made due again.
    /// </summary>
    public async Task RecordTearDownAsync(Guid resourceUuid, Guid offeringUuid, CancellationToken cancellationToken)
    {
        var id = TerminationWithoutOrder(resourceUuid);
        await leases.EnsureRecordAsync(id, OrderType.Terminate, resourceUuid, offeringUuid, cancellationToken);
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        await db.Orders.Where(o => o.OrderUuid == id && o.Phase == OrderPhase.Completed)
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.Phase, OrderPhase.Received).SetProperty(o => o.UpdatedAt, clock.GetUtcNow()), cancellationToken);
    }

    /// <summary>
    /// <see cref="TearDownTerminatedAsync"/>, only when one was begun and is unfinished: Waldur showed the resource terminated,
    /// and has erased it since (a 404 alone starts none, see <see cref="Events.ResourceStateSync"/>).
    /// </summary>
    public async Task<bool> ResumeTearDownAsync(Guid resourceUuid, CancellationToken cancellationToken) =>
        await TearDownBegunAsync(resourceUuid, cancellationToken) && await TearDownTerminatedAsync(resourceUuid, cancellationToken);

    /// <summary>Whether a teardown of the resource (<see cref="TearDownTerminatedAsync"/>) was begun and is unfinished.</summary>
    private async Task<bool> TearDownBegunAsync(Guid resourceUuid, CancellationToken cancellationToken)
    {
        var id = TerminationWithoutOrder(resourceUuid);
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.Orders.AnyAsync(o => o.OrderUuid == id && o.Phase != OrderPhase.Completed, cancellationToken);
    }

    /// <summary>Returns the attempt's <c>outcome</c> label (Completed, Deferred or Erred), or null when there was nothing to do.</summary>
    private async Task<string?> TearDownLeasedAsync(Guid id, Guid resourceUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var record = await db.Orders.SingleAsync(o => o.OrderUuid == id, cancellationToken);
        var subscription = await db.Subscriptions.SingleOrDefaultAsync(s => s.ResourceUuid == resourceUuid, cancellationToken);
        if (subscription?.State != SubscriptionState.Terminating)
        {
            // Finished by another process, or brought back by a Restore, since it was looked at.
            return null;
        }

        record.CompletedSteps = string.Empty;
        record.Notes = string.Empty;
        record.CompletedAt = null;
        await SaveAsync(db, record, OrderPhase.Approved, cancellationToken);
        var order = new OrderDetails { Uuid = id, Type = RequestTypes.Terminate, Marketplace_resource_uuid = resourceUuid, Offering_uuid = subscription.OfferingUuid };
        try
        {
            await TerminateAsync(db, record, order, subscription, cancellationToken);
            record.CompletedAt = clock.GetUtcNow();
            record.LastError = null;
            await SaveAsync(db, record, OrderPhase.Completed, cancellationToken);
            logger.LogInformation("Removed what subscription {SubscriptionId} had in Langflow and RAGFlow: Waldur terminated its resource {ResourceUuid} without a Terminate order",
                subscription.Id, resourceUuid);
            return nameof(OrderOutcome.Completed);
        }
        catch (Exception exception) when (!cancellationToken.IsCancellationRequested)
        {
            // A concurrent change of a shared row (another order of the project) is retried as any transient failure.
            var transient = exception is DbUpdateConcurrencyException || IsTransient(exception, cancellationToken);
            DiscardUnsaved(db);
            record.Attempts++;
            record.LastError = ColumnText.Clip(UpstreamFailures.Describe(exception), OrderRecord.MaxErrorLength);
            await SaveAsync(db, record, record.Phase, CancellationToken.None);
            logger.Log(transient ? LogLevel.Warning : LogLevel.Error, exception,
                "Removing what subscription {SubscriptionId} has in Langflow and RAGFlow failed (Waldur terminated resource {ResourceUuid} without a Terminate order); the next resource sweep tries again: {Reason}",
                subscription.Id, resourceUuid, record.LastError);
            return transient ? DeferredOutcome : nameof(OrderOutcome.Erred);
        }
    }

    /// <summary>
    /// The teardown of a resource Waldur terminated without a Terminate order, leased like the Terminate order it stands for.
    /// Its record stays: it is the teardown's progress (attempts, last error, notes), written before the subscription stops
    /// being served, so a teardown lost with its process is still known as begun once Waldur has erased the resource
    /// (<see cref="TearDownBegunAsync"/>). No Waldur order has its id, so nothing reads it as one.
    /// </summary>
    private static readonly ResourceWork TearDown = new("terminated-in-waldur", OrderType.Terminate, KeepsRecord: true);

    /// <summary>The id of the record under which the teardown of a resource Waldur terminated without a Terminate order keeps its lease and progress.</summary>
    internal static Guid TerminationWithoutOrder(Guid resourceUuid) => TearDown.RecordId(resourceUuid);

    private async Task<OrderOutcome> ProcessLeasedAsync(OrderDetails order, OrderType type, string state, Guid resourceUuid, CancellationToken cancellationToken)
    {
        var orderUuid = order.Uuid!.Value;
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var record = await db.Orders.SingleAsync(o => o.OrderUuid == orderUuid, cancellationToken);

        if (record.Phase != OrderPhase.Received)
        {
            // Someone worked on this order since it was read (another replica, or this one before a
            // crash): act on Waldur's current state, not on the copy read before the lease was taken.
            try
            {
                order = await waldur.GetOrderAsync(orderUuid, cancellationToken);
            }
            catch (Exception exception) when (IsTransient(exception, cancellationToken) || IsWaldurCredentialRefusal(exception))
            {
                throw new OrderDeferredException("Waldur could not be read: " + UpstreamFailures.Describe(exception), exception);
            }

            state = Wire(order.State)!;
            if (!WaldurOrderStates.IsActionable(state))
            {
                if (!WaldurOrderStates.IsFinal(state) || !IsUnsettled(record.Phase))
                {
                    return WaldurOrderStates.IsFinal(state) ? OrderOutcome.Ignored : OrderOutcome.Waiting;
                }

                if (state != WaldurOrderStates.Done)
                {
                    return await RecordStoppedAsync(db, record, state, resourceUuid);
                }

                // Set done in Waldur while a step was being retried: Waldur shows the buyer the order as carried out, so the
                // adapter carries it out. The rest runs as usual; the order is past every transition the adapter would send.
                logger.LogWarning("Order {OrderUuid} ({OrderType}) was set done in Waldur before the adapter finished it; its remaining steps run now",
                    orderUuid, type);
            }
        }

        if (record.Phase == OrderPhase.Erred)
        {
            if (!WaldurHadItStopped(record, order))
            {
                // The failure was decided earlier but Waldur was not told (it was unreachable then).
                await MarkErredInWaldurAsync(orderUuid, record.LastError ?? "Provisioning failed.", cancellationToken);
                await RecordToldAsync(db, record);
                return OrderOutcome.Erred;
            }

            if (state != WaldurOrderStates.Executing)
            {
                return OrderOutcome.Erred;
            }

            // Waldur had the order erred (or stopped) and shows it executing again: staff moved it back (set_state_executing
            // takes an order from erred). The buyer's order stands again, so the adapter works it again.
            await ReopenAsync(db, record, resourceUuid, cancellationToken);
        }

        try
        {
            var forms = await catalog.GetFormsAsync(order.Offering_uuid!.Value, cancellationToken);
            var existing = await db.Subscriptions.SingleOrDefaultAsync(s => s.ResourceUuid == resourceUuid, cancellationToken);
            var validation = Validate(type, order, forms, existing);

            if (state == WaldurOrderStates.PendingProvider)
            {
                if (!validation.IsValid)
                {
                    await waldur.RejectByProviderAsync(orderUuid, new OrderProviderRejectionRequest { Provider_rejection_comment = validation.Summary }, cancellationToken);
                    await SaveAsync(db, record, OrderPhase.Rejected, cancellationToken);
                    logger.LogInformation("Rejected order {OrderUuid}: {Reason}", orderUuid, validation.Summary);
                    return OrderOutcome.Rejected;
                }

                await ApproveAsync(orderUuid, cancellationToken);

                logger.LogInformation("Approved {OrderType} order {OrderUuid}", type, orderUuid);
            }

            if (record.Phase == OrderPhase.Received)
            {
                await SaveAsync(db, record, OrderPhase.Approved, cancellationToken);
            }

            if (!validation.IsValid)
            {
                // Approved elsewhere (or the form changed since): the input cannot be provisioned.
                throw new PermanentProvisioningException(validation.Summary);
            }

            var subscription = type switch
            {
                OrderType.Create or OrderType.Restore => await CreateAsync(db, record, order, existing, validation.Values, cancellationToken),
                OrderType.Update => await UpdateAsync(db, record, order, existing, validation.Values, cancellationToken),
                OrderType.Terminate => await TerminateAsync(db, record, order, existing, cancellationToken),
                _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown order type."),
            };

            if (!record.HasCompleted(SubmitReportStep))
            {
                if (subscription is not null)
                {
                    await reporter.SubmitAsync(subscription, record, forms.OfferingName, cancellationToken);
                }

                record.MarkCompleted(SubmitReportStep);
                await SaveAsync(db, record, OrderPhase.Reported, cancellationToken);
            }

            // Waldur only accepts done from executing. Someone may have finished the order meanwhile, or staff stopped it
            // (cancelled, rejected, erred), even between this read and the call, which Waldur then refuses.
            var latest = Wire((await waldur.GetOrderAsync(orderUuid, cancellationToken)).State);
            if (latest == WaldurOrderStates.Executing)
            {
                latest = await TransitionAsync(orderUuid, WaldurOrderStates.Done, () => waldur.SetStateDoneAsync(orderUuid, cancellationToken), cancellationToken,
                    accepted: IsStopped);
            }

            if (latest != WaldurOrderStates.Done)
            {
                return await RecordStoppedAsync(db, record, latest, resourceUuid);
            }

            record.CompletedAt = clock.GetUtcNow();
            record.LastError = null;
            await SaveAsync(db, record, OrderPhase.Completed, cancellationToken);
            logger.LogInformation("Order {OrderUuid} ({OrderType}) is done", orderUuid, type);
            return OrderOutcome.Completed;
        }
        catch (DbUpdateConcurrencyException exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Another order changed a shared row meanwhile (two subscriptions of one project share its
            // workspace). Nothing of this attempt is saved, so the interrupted step runs again from what the
            // database holds; steps are idempotent.
            logger.LogWarning("Order {OrderUuid} met a concurrent change and will be retried", orderUuid);
            throw new OrderDeferredException("A concurrent change to the same project; retrying.", exception);
        }
        // Not approved yet, even a permanent failure is retried: Waldur takes "erred" only from executing, so an order
        // failed here would stay pending for ever with nobody told (the site agent keeps such orders pending too).
        // Waldur refusing the adapter's own credentials (a token expired or lost its role) is the operator's to fix, not the
        // buyer's fault: the order waits for the fix rather than being erred.
        catch (Exception exception) when (IsTransient(exception, cancellationToken) || IsWaldurCredentialRefusal(exception)
            || (exception is not OrderDeferredException && !cancellationToken.IsCancellationRequested && record.Phase == OrderPhase.Received && state == WaldurOrderStates.PendingProvider))
        {
            DiscardUnsaved(db);
            record.Attempts++;
            record.LastError = ColumnText.Clip(UpstreamFailures.Describe(exception), OrderRecord.MaxErrorLength);
            await SaveAsync(db, record, record.Phase, CancellationToken.None);
            if (IsWaldurCredentialRefusal(exception))
            {
                logger.LogError(exception, "Waldur refused the adapter's credentials: order {OrderUuid} stays as it is in Waldur and is retried until Waldur:Token is renewed or its account has the offering's role again: {Reason}",
                    orderUuid, record.LastError);
            }
            else
            {
                logger.Log(IsTransient(exception, cancellationToken) ? LogLevel.Warning : LogLevel.Error, exception,
                    "Order {OrderUuid} failed and stays to be retried: {Reason}", orderUuid, record.LastError);
            }

            throw new OrderDeferredException(record.LastError, exception);
        }
        catch (Exception exception) when (exception is not OrderDeferredException && !cancellationToken.IsCancellationRequested)
        {
            var message = BuyerMessage(orderUuid, exception);
            logger.LogError(exception, "Order {OrderUuid} failed permanently: {Reason}", orderUuid, UpstreamFailures.Describe(exception));
            DiscardUnsaved(db);
            record.LastError = ColumnText.Clip(message, OrderRecord.MaxErrorLength);
            // Not served from here on, and only then erred in Waldur: never an erred order with its agent still served.
            await SaveErredAsync(db, record, resourceUuid);
            await MarkErredInWaldurAsync(orderUuid, message, cancellationToken);
            await RecordToldAsync(db, record);
            return OrderOutcome.Erred;
        }
    }

    /// <summary>
    /// Whether Waldur had the order of this erred record as erred or stopped: the adapter told it (its record is then settled,
    /// <see cref="OrderRecord.CompletedAt"/>), or Waldur stopped it itself (<see cref="RecordStoppedAsync"/>,
    /// <see cref="RecordSettledAsync"/>). A record erred before settling was recorded shows it by Waldur still carrying the
    /// adapter's message: set_state_executing changes the order's state alone. Otherwise Waldur was not told yet.
    /// </summary>
    private static bool WaldurHadItStopped(OrderRecord record, OrderDetails order) =>
        record.CompletedAt is not null
        || (!string.IsNullOrEmpty(record.LastError) && string.Equals(order.Error_message, record.LastError, StringComparison.Ordinal));

    /// <summary>Records that Waldur now has the erred order as erred (or in whatever final state it was found in): the record is settled.</summary>
    private async Task RecordToldAsync(AdapterDbContext db, OrderRecord record)
    {
        record.CompletedAt = clock.GetUtcNow();
        await SaveAsync(db, record, OrderPhase.Erred, CancellationToken.None);
    }

    /// <summary>
    /// Takes up again an order Waldur staff moved back to executing after it was erred. It goes on from where it stood: the
    /// steps done stay done (each is idempotent, and the ones not done run), its attempts and failure are forgotten. A Create
    /// or Restore whose subscription its failure erred provisions it again, and activates it anew only once Waldur still has
    /// the order executing after the steps; one terminated since stays so (<see cref="CreateAsync"/> refuses to build it again).
    /// </summary>
    private async Task ReopenAsync(AdapterDbContext db, OrderRecord record, Guid resourceUuid, CancellationToken cancellationToken)
    {
        var failure = record.LastError;
        if (record.Type is OrderType.Create or OrderType.Restore)
        {
            var subscription = await db.Subscriptions.SingleOrDefaultAsync(s => s.ResourceUuid == resourceUuid, cancellationToken);
            if (subscription?.State == SubscriptionState.Erred)
            {
                subscription.State = SubscriptionState.Provisioning;
                subscription.UpdatedAt = clock.GetUtcNow();
            }

            record.CompletedSteps = string.Join(',', record.Steps.Where(step => step != ActivateStep));
        }

        record.Attempts = 0;
        record.LastError = null;
        record.CompletedAt = null;
        await SaveAsync(db, record, OrderPhase.Approved, cancellationToken);
        logger.LogWarning("Order {OrderUuid} ({OrderType}) was erred, and Waldur shows it executing again: staff moved it back. It is worked again from where it stood (steps done: {Steps}); it had failed with: {Reason}",
            record.OrderUuid, record.Type, record.CompletedSteps, failure);
    }

    /// <summary>Whether the adapter approved the order (or found it approved) and has not settled it; no record (null) is not.</summary>
    private static bool IsUnsettled(OrderPhase? phase) => phase is OrderPhase.Approved or OrderPhase.Provisioned or OrderPhase.Reported;

    /// <summary>The phase of the adapter's record of the order, or null when it has none.</summary>
    private async Task<OrderPhase?> PhaseHereAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        return await db.Orders.AsNoTracking().Where(o => o.OrderUuid == orderUuid).Select(o => (OrderPhase?)o.Phase).SingleOrDefaultAsync(cancellationToken);
    }

    /// <summary>
    /// Waldur staff (or another party) stopped the order (cancelled, rejected or erred it) before the adapter finished it:
    /// Waldur's decision stands, the order is neither done nor erred again, and nothing is removed. A Create or Restore is
    /// not served; what it built stays for the resource's Terminate.
    /// </summary>
    private async Task<OrderOutcome> RecordStoppedAsync(AdapterDbContext db, OrderRecord record, string? state, Guid resourceUuid)
    {
        var consequence = record.Type switch
        {
            OrderType.Create or OrderType.Restore => "It is not served; what was built stays until the resource's Terminate removes it.",
            OrderType.Update => "The settings it applied so far stay; its remaining steps do not run.",
            _ => "What it removed so far stays removed; it removes nothing more.",
        };
        record.LastError = $"The order became {state} in Waldur before it was done. {consequence}";
        record.CompletedAt = clock.GetUtcNow();
        await SaveErredAsync(db, record, resourceUuid);
        var subscription = await db.Subscriptions.AsNoTracking().Where(s => s.ResourceUuid == resourceUuid)
            .Select(s => (SubscriptionState?)s.State).SingleOrDefaultAsync(CancellationToken.None);
        logger.LogWarning("Order {OrderUuid} ({OrderType}) became {OrderState} in Waldur before the adapter finished it (steps done: {Steps}). {Consequence} Its subscription is {SubscriptionState}",
            record.OrderUuid, record.Type, state, record.CompletedSteps, consequence, subscription);
        return OrderOutcome.Erred;
    }

    /// <summary>
    /// Saves the order as erred together with what that means for its subscription: one a Create or Restore made live is
    /// erred (not served), as is one still provisioning, whatever the order. One transaction, so an order recorded as
    /// failed (and then erred in Waldur) never leaves its agent served.
    /// </summary>
    private async Task SaveErredAsync(AdapterDbContext db, OrderRecord record, Guid resourceUuid)
    {
        var wentLive = record.Type is OrderType.Create or OrderType.Restore && record.HasCompleted(ActivateStep);
        var now = clock.GetUtcNow();
        await using var transaction = await db.Database.BeginTransactionAsync(CancellationToken.None);
        // The version moves on, so a save of the row from an older read (the resource sync's) is retried and sees it erred.
        await db.Subscriptions
            .Where(s => s.ResourceUuid == resourceUuid && (s.State == SubscriptionState.Provisioning || (wentLive && s.State == SubscriptionState.Active)))
            .ExecuteUpdateAsync(set => set
                .SetProperty(s => s.State, SubscriptionState.Erred)
                .SetProperty(s => s.Version, s => s.Version + 1)
                .SetProperty(s => s.UpdatedAt, now), CancellationToken.None);
        await SaveAsync(db, record, OrderPhase.Erred, CancellationToken.None);
        await transaction.CommitAsync(CancellationToken.None);
    }

    /// <summary>
    /// Keeps the adapter's record in step when Waldur finished an order without us (or after a crash). Called for a record read
    /// as not yet approved; one that another process settled since is left as it is.
    /// </summary>
    private async Task RecordSettledAsync(Guid orderUuid, string? state, CancellationToken cancellationToken)
    {
        OrderPhase? phase = state switch
        {
            WaldurOrderStates.Done => OrderPhase.Completed,
            WaldurOrderStates.Erred => OrderPhase.Erred,
            WaldurOrderStates.Rejected => OrderPhase.Rejected,
            WaldurOrderStates.Canceled => OrderPhase.Skipped,
            _ => null,
        };
        if (phase is not { } settled)
        {
            return;
        }

        var now = clock.GetUtcNow();
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        await db.Orders
            .Where(o => o.OrderUuid == orderUuid && o.Phase != OrderPhase.Completed && o.Phase != OrderPhase.Erred && o.Phase != OrderPhase.Rejected && o.Phase != OrderPhase.Skipped)
            .ExecuteUpdateAsync(set => set.SetProperty(o => o.Phase, settled).SetProperty(o => o.UpdatedAt, now).SetProperty(o => o.CompletedAt, now), cancellationToken);
    }

    /// <summary>Approves the order; a refusal leaves it pending for the operator (nothing was provisioned, so it is not erred).</summary>
    private async Task ApproveAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        try
        {
            await TransitionAsync(orderUuid, WaldurOrderStates.Executing, () => waldur.ApproveByProviderAsync(orderUuid, new OrderApproveByProviderRequest(), cancellationToken), cancellationToken);
        }
        catch (ApiException exception) when (!UpstreamFailures.IsTransient(exception))
        {
            logger.LogError(exception, "Waldur refused to approve order {OrderUuid}; leaving it pending", orderUuid);
            throw new OrderDeferredException("Waldur refused the approval: " + UpstreamFailures.Describe(exception), exception);
        }
    }

    /// <summary>
    /// Sends one of the order's transitions and returns the state the order is in after it. Waldur refuses a transition from
    /// a state the order has left (409): when the order is where the transition leads all the same (an earlier call went
    /// through and its answer was lost, or someone else moved it since it was read), that is no failure, nor when it is in a
    /// state <paramref name="accepted"/> leaves to the caller. Any other refusal is thrown.
    /// </summary>
    private async Task<string?> TransitionAsync(Guid orderUuid, string reached, Func<Task> send, CancellationToken cancellationToken, Func<string?, bool>? accepted = null)
    {
        try
        {
            await send();
            return reached;
        }
        catch (ApiException exception) when (!UpstreamFailures.IsTransient(exception))
        {
            var fresh = Wire((await waldur.GetOrderAsync(orderUuid, cancellationToken)).State);
            if (fresh == reached)
            {
                logger.LogInformation("Waldur refused to move order {OrderUuid} to {State}: it is there already", orderUuid, reached);
                return fresh;
            }

            if (accepted?.Invoke(fresh) != true)
            {
                throw;
            }

            logger.LogWarning("Waldur refused to move order {OrderUuid} to {State}: it is {OrderState} now", orderUuid, reached, fresh);
            return fresh;
        }
    }

    /// <summary>Stopped by Waldur staff (or another party) before the provider finished it.</summary>
    private static bool IsStopped(string? state) => state is WaldurOrderStates.Canceled or WaldurOrderStates.Rejected or WaldurOrderStates.Erred;

    private async Task<Subscription> CreateAsync(AdapterDbContext db, OrderRecord record, OrderDetails order, Subscription? existing, JsonObject configuration, CancellationToken cancellationToken)
    {
        // A Terminate of this resource ran since this order began (or, for a Create, ever): building again would bring back a
        // tenant Waldur has as terminated. Only a Restore brings a terminated subscription back.
        if (existing?.State is SubscriptionState.Terminating or SubscriptionState.Terminated
            && (record.Type == OrderType.Create || record.HasCompleted(RecordSubscriptionStep)))
        {
            throw new PermanentProvisioningException("This subscription was terminated while it was being created.");
        }

        var subscription = existing;
        if (!record.HasCompleted(RecordSubscriptionStep) || subscription is null)
        {
            subscription = await RecordSubscriptionAsync(db, record, order, existing, configuration, cancellationToken);
            record.SubscriptionId = subscription.Id;
            record.MarkCompleted(RecordSubscriptionStep);
            await SaveAsync(db, record, record.Phase, cancellationToken);
        }

        if (!record.HasCompleted(SetBackendIdStep))
        {
            // As early as possible: an erred Create without a backend id makes Waldur drop the resource.
            await waldur.SetResourceBackendIdAsync(subscription.ResourceUuid, new ResourceBackendIDRequest { Backend_id = subscription.Id.ToString() }, cancellationToken);
            record.MarkCompleted(SetBackendIdStep);
            await SaveAsync(db, record, record.Phase, cancellationToken);
        }

        await RunProvisionerStepsAsync(db, record, order, subscription, configuration, cancellationToken);

        if (!record.HasCompleted(ActivateStep))
        {
            // Staff may have cancelled, rejected or erred the order while it was provisioned: then it is not served. What was
            // built stays for the resource's Terminate (or the reconciler, if Waldur terminated the resource itself).
            var latest = Wire((await waldur.GetOrderAsync(record.OrderUuid, cancellationToken)).State);
            if (latest is not (WaldurOrderStates.Executing or WaldurOrderStates.Done))
            {
                throw new PermanentProvisioningException($"The order became {latest} in Waldur while it was being provisioned.");
            }

            subscription.State = SubscriptionState.Active;
            subscription.UpdatedAt = clock.GetUtcNow();
            record.MarkCompleted(ActivateStep);
            await SaveAsync(db, record, OrderPhase.Provisioned, cancellationToken);
        }

        return subscription;
    }

    private async Task<Subscription> UpdateAsync(AdapterDbContext db, OrderRecord record, OrderDetails order, Subscription? subscription, JsonObject configuration, CancellationToken cancellationToken)
    {
        if (subscription is null || subscription.State is SubscriptionState.Terminated or SubscriptionState.Terminating)
        {
            throw new PermanentProvisioningException("This subscription is not active on the provider's side, so its settings cannot be changed.");
        }

        if (!record.HasCompleted(ApplyConfigurationStep))
        {
            subscription.Configuration = configuration.ToJsonString();
            subscription.ConfigurationVersion++;
            subscription.PlanUuid = order.New_plan_uuid ?? subscription.PlanUuid;
            subscription.UpdatedAt = clock.GetUtcNow();
            record.SubscriptionId = subscription.Id;
            record.MarkCompleted(ApplyConfigurationStep);
            await SaveAsync(db, record, record.Phase, cancellationToken);
        }

        await RunProvisionerStepsAsync(db, record, order, subscription, configuration, cancellationToken);
        await SaveAsync(db, record, OrderPhase.Provisioned, cancellationToken);
        return subscription;
    }

    private async Task<Subscription?> TerminateAsync(AdapterDbContext db, OrderRecord record, OrderDetails order, Subscription? subscription, CancellationToken cancellationToken)
    {
        if (subscription is null)
        {
            // Never provisioned here (or already purged): there is nothing to remove.
            record.MarkCompleted(FinishTerminationStep);
            await SaveAsync(db, record, OrderPhase.Provisioned, cancellationToken);
            return null;
        }

        if (!record.HasCompleted(BeginTerminationStep))
        {
            subscription.State = SubscriptionState.Terminating;
            subscription.UpdatedAt = clock.GetUtcNow();
            record.SubscriptionId = subscription.Id;
            record.MarkCompleted(BeginTerminationStep);
            await SaveAsync(db, record, record.Phase, cancellationToken);
        }

        var configuration = JsonNode.Parse(subscription.Configuration) as JsonObject ?? [];
        await RunProvisionerStepsAsync(db, record, order, subscription, configuration, cancellationToken);

        if (!record.HasCompleted(FinishTerminationStep))
        {
            subscription.State = SubscriptionState.Terminated;
            subscription.TerminatedAt = clock.GetUtcNow();
            subscription.UpdatedAt = subscription.TerminatedAt.Value;
            record.MarkCompleted(FinishTerminationStep);
            await SaveAsync(db, record, OrderPhase.Provisioned, cancellationToken);
        }

        return subscription;
    }

    private async Task RunProvisionerStepsAsync(AdapterDbContext db, OrderRecord record, OrderDetails order, Subscription subscription, JsonObject configuration, CancellationToken cancellationToken)
    {
        var workspace = await db.Workspaces.SingleAsync(w => w.Id == subscription.WorkspaceId, cancellationToken);
        var notes = record.Notes.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
        var context = new ProvisioningContext
        {
            Db = db,
            Order = order,
            Subscription = subscription,
            Workspace = workspace,
            Configuration = configuration,
            Notes = notes,
        };

        foreach (var step in provisioners.SelectMany(p => p.StepsFor(record.Type)))
        {
            if (record.HasCompleted(step.Name))
            {
                continue;
            }

            logger.LogInformation("Order {OrderUuid}: running step {Step}", record.OrderUuid, step.Name);
            await step.ExecuteAsync(context, cancellationToken);
            subscription.UpdatedAt = clock.GetUtcNow();
            record.Notes = string.Join('\n', notes);
            record.MarkCompleted(step.Name);
            await SaveAsync(db, record, record.Phase, cancellationToken);
        }
    }

    private async Task<Subscription> RecordSubscriptionAsync(AdapterDbContext db, OrderRecord record, OrderDetails order, Subscription? existing, JsonObject configuration, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        var customerId = order.Customer_uuid ?? throw new PermanentProvisioningException("The order names no organization.");
        var projectId = order.Project_uuid ?? throw new PermanentProvisioningException("The order names no project.");

        var subscription = existing ?? new Subscription
        {
            Id = Guid.NewGuid(),
            ResourceUuid = order.Marketplace_resource_uuid ?? order.Resource_uuid!.Value,
            OfferingUuid = order.Offering_uuid!.Value,
            CustomerId = customerId,
            WorkspaceId = projectId,
            PlanUuid = order.Plan_uuid,
            Name = ColumnText.Clip(order.Resource_name, Subscription.MaxNameLength),
            State = SubscriptionState.Provisioning,
            Configuration = configuration.ToJsonString(),
            ConfigurationVersion = 1,
            CreatedAt = now,
            UpdatedAt = now,
        };
        try
        {
            // Fenced like the order's progress, in one transaction: a worker whose lease was taken over records no
            // organization, project or subscription beside the new holder's.
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            await leases.FenceAsync(db, record.OrderUuid, cancellationToken);

            // The organization and project may be recorded by now (another order of them, perhaps on another replica): the
            // inserts then do nothing, rather than fail with a unique violation EF Core would log as an error. A row made
            // nameless by a credit grant before this first order gets Waldur's name.
            await CustomerRecords.InsertOrNameAsync(db, customerId, order.Customer_name, now, cancellationToken);
            await db.Database.ExecuteSqlAsync($"""
                INSERT INTO workspaces (id, customer_id, name, created_at, updated_at, version)
                VALUES ({StoredValues.Uuid(db, projectId)}, {StoredValues.Uuid(db, customerId)}, {ColumnText.Clip(order.Project_name, Workspace.MaxNameLength)},
                        {StoredValues.Instant(db, now)}, {StoredValues.Instant(db, now)}, {0L})
                ON CONFLICT DO NOTHING
                """, cancellationToken);

            if (existing is not null)
            {
                // Restore of a terminated subscription, or a resumed Create: provision it again under the same id.
                existing.State = SubscriptionState.Provisioning;
                existing.TerminatedAt = null;
                existing.Configuration = configuration.ToJsonString();
                existing.UpdatedAt = now;
            }
            else
            {
                db.Subscriptions.Add(subscription);
            }

            await db.SaveChangesAsync(cancellationToken); // fenced above: the lease row stays locked until the commit
            await transaction.CommitAsync(cancellationToken);
            return subscription;
        }
        catch (DbUpdateException exception) when (existing is null && DbErrors.IsUniqueViolation(exception))
        {
            // The resource was recorded concurrently (by a worker whose lease on its order was taken over): drop this
            // attempt's subscription (keeping the order's own record tracked) and use what is there now, recording the
            // subscription again if it was not the one inserted. The transaction was rolled back on leaving it.
            foreach (var entry in db.ChangeTracker.Entries().Where(e => e.State == EntityState.Added).ToList())
            {
                entry.State = EntityState.Detached;
            }

            return await db.Subscriptions.SingleOrDefaultAsync(s => s.ResourceUuid == subscription.ResourceUuid, cancellationToken)
                ?? await RecordSubscriptionAsync(db, record, order, existing, configuration, cancellationToken);
        }
    }

    private static FormValidation Validate(OrderType type, OrderDetails order, OfferingForms forms, Subscription? existing)
    {
        var attributes = ToJsonObject(order.Attributes);
        switch (type)
        {
            case OrderType.Restore when existing is not null:
                // HomePort's restore sends no form: the subscription comes back with its own settings, changed only
                // by whatever the order does carry.
                return forms.OrderForm.ValidateChange(ChangeOf(attributes), JsonNode.Parse(existing.Configuration) as JsonObject ?? []);
            case OrderType.Create or OrderType.Restore:
                return forms.OrderForm.ValidateComplete(attributes);
            case OrderType.Update:
                var current = existing is null ? [] : JsonNode.Parse(existing.Configuration) as JsonObject ?? [];
                // Only the options the offering lets buyers change later; fall back to the order form.
                var form = forms.ResourceOptionsForm.Fields.Count > 0 ? forms.ResourceOptionsForm : forms.OrderForm;
                return form.ValidateChange(ChangeOf(attributes), current);
            case OrderType.Terminate:
                return new FormValidation([], []);
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown order type.");
        }
    }

    /// <summary>
    /// The settings an Update order changes. HomePort's option change (<c>update_options</c>) sends them wrapped as
    /// <c>{"new_options": {…}}</c>; Waldur also records the state it replaces (<c>old_limits</c>, <c>old_plan_uuid</c>, …),
    /// which is not a change. A limits or plan change therefore changes no setting. Flat settings (other clients,
    /// the site agent's order templates) are taken as they are.
    /// </summary>
    internal static JsonObject ChangeOf(JsonObject attributes)
    {
        if (attributes["new_options"] is JsonObject options)
        {
            return options;
        }

        var change = new JsonObject();
        foreach (var (key, value) in attributes)
        {
            if (!key.StartsWith("old_", StringComparison.Ordinal) && key != "new_options")
            {
                change[key] = value?.DeepClone();
            }
        }

        return change;
    }

    internal static JsonObject ToJsonObject(object? attributes) => attributes switch
    {
        null => [],
        JsonObject json => json,
        JsonElement { ValueKind: JsonValueKind.Object } element => JsonObject.Create(element) ?? [],
        JsonElement => [],
        _ => JsonSerializer.SerializeToNode(attributes) as JsonObject ?? [],
    };

    private async Task MarkErredInWaldurAsync(Guid orderUuid, string message, CancellationToken cancellationToken)
    {
        try
        {
            var latest = await waldur.GetOrderAsync(orderUuid, cancellationToken);
            if (Wire(latest.State) == WaldurOrderStates.Executing)
            {
                await TransitionAsync(orderUuid, WaldurOrderStates.Erred, () => waldur.SetStateErredAsync(orderUuid, new OrderErrorDetailsRequest { Error_message = message }, cancellationToken), cancellationToken);
            }
        }
        catch (Exception exception) when (IsTransient(exception, cancellationToken) || IsWaldurCredentialRefusal(exception))
        {
            throw new OrderDeferredException("Waldur could not be told the order failed: " + UpstreamFailures.Describe(exception), exception);
        }
    }

    private string BuyerMessage(Guid orderUuid, Exception exception)
    {
        var lead = exception is PermanentProvisioningException ? exception.Message : "The agent could not be provisioned.";
        var details = options.CurrentValue.ExposeErrorDetails && exception is not PermanentProvisioningException
            ? " Details: " + UpstreamFailures.Describe(exception)
            : string.Empty;
        return $"{lead}{details} Reference: order {orderUuid}.";
    }

    /// <summary>
    /// Forgets what this attempt changed but did not save (the order record's unsaved progress included), so that
    /// recording the failure saves only that, and cannot fail again on whatever made the attempt fail. What was
    /// saved stays; a step whose completion was not saved runs again, as after a crash.
    /// </summary>
    private static void DiscardUnsaved(AdapterDbContext db)
    {
        db.ChangeTracker.DetectChanges();
        foreach (var entry in db.ChangeTracker.Entries().ToList())
        {
            if (entry.State == EntityState.Added)
            {
                entry.State = EntityState.Detached;
            }
            else if (entry.State is EntityState.Modified or EntityState.Deleted)
            {
                entry.CurrentValues.SetValues(entry.OriginalValues);
                entry.State = EntityState.Unchanged;
            }
        }
    }

    /// <summary>
    /// Saves the order's progress (and what its steps added to <paramref name="db"/>), fenced by its lease: only while this
    /// process still holds it, or nothing is saved and the work stops (<see cref="OrderLeases.FenceAsync"/>). A worker whose
    /// lease was taken over mid-step thus never records that step, nor goes on to tell Waldur what its successor redoes.
    /// </summary>
    private async Task SaveAsync(AdapterDbContext db, OrderRecord record, OrderPhase phase, CancellationToken cancellationToken)
    {
        record.Phase = phase;
        record.UpdatedAt = clock.GetUtcNow();
        await SaveFencedAsync(db, record.OrderUuid, cancellationToken);
    }

    /// <summary>
    /// Saves what <paramref name="db"/> tracks only while this process still holds the lease on <paramref name="orderUuid"/>
    /// (<see cref="OrderLeases.FenceAsync"/>): within the caller's transaction if it has one (SaveErredAsync), else in one of
    /// its own, rolled back (and so closed) by the time a failed save's exception reaches the caller.
    /// </summary>
    private async Task SaveFencedAsync(AdapterDbContext db, Guid orderUuid, CancellationToken cancellationToken)
    {
        await using var transaction = db.Database.CurrentTransaction is null ? await db.Database.BeginTransactionAsync(cancellationToken) : null;
        await leases.FenceAsync(db, orderUuid, cancellationToken);
        await db.SaveChangesAsync(cancellationToken);
        if (transaction is not null)
        {
            await transaction.CommitAsync(cancellationToken);
        }
    }

    private static bool IsTransient(Exception exception, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested
        && (exception is TransientProvisioningException || (exception is not PermanentProvisioningException && UpstreamFailures.IsTransient(exception)));

    /// <summary>
    /// Waldur answered 401 or 403: it refuses the adapter's token (expired, revoked, or its account lost the offering's role),
    /// not the order. Only answers from Waldur's address count: Langflow's and RAGFlow's are the provisioning steps' to classify.
    /// </summary>
    private bool IsWaldurCredentialRefusal(Exception exception) =>
        exception is ApiException { StatusCode: System.Net.HttpStatusCode.Unauthorized or System.Net.HttpStatusCode.Forbidden } refusal
        && refusal.RequestMessage?.RequestUri is { IsAbsoluteUri: true } requested
        && waldurOptions.CurrentValue.BaseUrl is { } waldurBase
        && waldurBase.IsBaseOf(requested);

    internal static string? Wire(OrderState? state) => WaldurEnums.ToWire(state);

    private static OrderType? MapType(RequestTypes? type) => type switch
    {
        RequestTypes.Create => OrderType.Create,
        RequestTypes.Update => OrderType.Update,
        RequestTypes.Terminate => OrderType.Terminate,
        RequestTypes.Restore => OrderType.Restore,
        _ => null,
    };

    /// <summary>Counts a deferral decided before the order's lease (the leased part counts its own) and returns the exception to throw.</summary>
    private OrderDeferredException Deferred(string type, string reason, Exception? inner = null)
    {
        metrics.OrdersProcessed.WithLabels(type, DeferredOutcome).Inc();
        return new OrderDeferredException(reason, inner);
    }
}
