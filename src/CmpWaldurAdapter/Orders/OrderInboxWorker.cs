using System.Collections.Concurrent;
using CmpWaldurAdapter.Observability;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// Pumps the order inbox: up to <see cref="OrdersOptions.Concurrency"/> orders at work at once, and each slot
/// that comes free takes the next due order at once, so one slow order (an upstream call timing out and
/// being retried) holds up only its own slot. Wakes when an event arrives in this process or a slot comes
/// free, or every few seconds for work written by other replicas and for retries that came due. Once the host
/// begins to stop (SIGTERM), it takes nothing new: the web server drains first, for up to the shutdown timeout, and
/// an order started then would only be cut off when the pod is killed; the orders at work go on until this worker's
/// own stop.
/// </summary>
public sealed class OrderInboxWorker(OrderInbox inbox, OrderProcessor processor, OrderLeases leases, AdapterMetrics metrics, TimeProvider clock, IOptionsMonitor<OrdersOptions> options,
    IHostApplicationLifetime lifetime, ILogger<OrderInboxWorker> logger)
    : BackgroundService
{
    /// <summary>How soon an order held by another process is looked at again.</summary>
    private static readonly TimeSpan BusyRetry = TimeSpan.FromSeconds(5);

    /// <summary>How often leases this process holds without working on them are looked for.</summary>
    private static readonly TimeSpan OrphanSweepInterval = TimeSpan.FromSeconds(30);

    // Orders at work in this process: never taken a second time while at work (that attempt would only find
    // the lease taken and put the order off as busy), and their count is the slots in use.
    private readonly ConcurrentDictionary<Guid, byte> _inFlight = new();

    // Set by a slot whose order's outcome could not be written (the database is away): the pump pauses as
    // when the inbox cannot be read, instead of taking the still-due order again at once.
    private int _slotFailed;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failing = false;
        var nextSweep = clock.GetUtcNow() + OrphanSweepInterval;
        var running = new List<Task>();
        using var taking = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, lifetime.ApplicationStopping);
        while (!taking.IsCancellationRequested)
        {
            try
            {
                if (Interlocked.Exchange(ref _slotFailed, 0) == 1)
                {
                    failing = true;
                    await Task.Delay(options.CurrentValue.InboxCheckInterval, clock, taking.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                    continue;
                }

                if (failing || clock.GetUtcNow() >= nextSweep)
                {
                    // The database answers again (or it is time): a release lost while it was away must not
                    // keep the order from other replicas until the lease expires.
                    var freed = await leases.ReleaseOrphanedAsync(stoppingToken);
                    if (freed > 0)
                    {
                        logger.LogWarning("Released {Count} order lease(s) this process held without working on them", freed);
                    }

                    failing = false;
                    nextSweep = clock.GetUtcNow() + OrphanSweepInterval;
                }

                running.RemoveAll(slot => slot.IsCompleted);
                running.AddRange(await StartDueAsync(taking.Token, stoppingToken));

                // A slot that comes free wakes this wait too, so the next due order is taken at once.
                await inbox.WaitForWorkAsync(options.CurrentValue.InboxCheckInterval, taking.Token);
            }
            catch (OperationCanceledException) when (taking.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                // The database itself is unavailable: keep the loop alive and try again shortly.
                failing = true;
                logger.LogError(exception, "The order inbox could not be read; retrying");
                await Task.Delay(options.CurrentValue.InboxCheckInterval, clock, taking.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        // Graceful shutdown: the orders at work see the stopping token and end (left in the inbox) before the worker does.
        await Task.WhenAll(running);
    }

    /// <summary>
    /// Starts due orders not at work here yet in the slots that are free, unless <paramref name="taking"/> ended (the host
    /// stops); returns the started slots, which run until <paramref name="stoppingToken"/>.
    /// </summary>
    private async Task<IReadOnlyList<Task>> StartDueAsync(CancellationToken taking, CancellationToken stoppingToken)
    {
        var free = options.CurrentValue.Concurrency - _inFlight.Count;
        if (free <= 0)
        {
            return [];
        }

        var due = await inbox.DueAsync(free, _inFlight.Keys.ToList(), taking);
        taking.ThrowIfCancellationRequested();
        var started = new List<Task>(due.Count);
        foreach (var orderUuid in due)
        {
            if (_inFlight.TryAdd(orderUuid, 0))
            {
                started.Add(Task.Run(() => RunSlotAsync(orderUuid, stoppingToken), CancellationToken.None));
            }
        }

        return started;
    }

    private async Task RunSlotAsync(Guid orderUuid, CancellationToken stoppingToken)
    {
        try
        {
            await HandleAsync(orderUuid, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: the order stays in the inbox for the next start or another replica.
        }
        catch (Exception exception)
        {
            logger.LogError(exception, "The outcome of order {OrderUuid} could not be written; it stays in the inbox", orderUuid);
            Interlocked.Exchange(ref _slotFailed, 1);
        }
        finally
        {
            // Only after the outcome is written: taken again earlier, the order would run twice for one announcement.
            _inFlight.TryRemove(orderUuid, out _);
            inbox.Wake();
        }
    }

    private async Task HandleAsync(Guid orderUuid, CancellationToken cancellationToken)
    {
        var started = clock.GetUtcNow();
        try
        {
            var outcome = await processor.ProcessAsync(orderUuid, cancellationToken);
            if (outcome == OrderOutcome.Busy)
            {
                await inbox.DeferAsync(orderUuid, "Held by another process.", BusyRetry, cancellationToken);
            }
            else
            {
                if (outcome == OrderOutcome.Completed && await inbox.FirstAnnouncedAsync(orderUuid, cancellationToken) is { } announced)
                {
                    metrics.OrderEventToDone.Observe((clock.GetUtcNow() - announced).TotalSeconds);
                }

                await inbox.CompleteAsync(orderUuid, started, cancellationToken);
            }
        }
        catch (OrderDeferredException deferred)
        {
            await inbox.DeferAsync(orderUuid, deferred.Message, null, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception exception)
        {
            // A bug or a database failure: never lose the order, look at it again later.
            logger.LogError(exception, "Order {OrderUuid} could not be processed; it stays in the inbox", orderUuid);
            await inbox.DeferAsync(orderUuid, exception.GetType().Name + ": " + exception.Message, null, CancellationToken.None);
        }
    }
}
