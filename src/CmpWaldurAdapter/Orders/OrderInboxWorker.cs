using CmpWaldurAdapter.Observability;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Orders;

/// <summary>
/// Drains the order inbox: wakes when an event arrives in this process, or every few seconds for
/// work written by other replicas and for retries that came due.
/// </summary>
public sealed class OrderInboxWorker(OrderInbox inbox, OrderProcessor processor, OrderLeases leases, AdapterMetrics metrics, TimeProvider clock, IOptionsMonitor<OrdersOptions> options, ILogger<OrderInboxWorker> logger)
    : BackgroundService
{
    /// <summary>How soon an order held by another process is looked at again.</summary>
    private static readonly TimeSpan BusyRetry = TimeSpan.FromSeconds(5);

    /// <summary>How often leases this process holds without working on them are looked for.</summary>
    private static readonly TimeSpan OrphanSweepInterval = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failing = false;
        var nextSweep = clock.GetUtcNow() + OrphanSweepInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
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

                var processed = await DrainOnceAsync(stoppingToken);
                if (processed == 0)
                {
                    await inbox.WaitForWorkAsync(options.CurrentValue.InboxCheckInterval, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception exception)
            {
                // The database itself is unavailable: keep the loop alive and try again shortly.
                failing = true;
                logger.LogError(exception, "The order inbox could not be read; retrying");
                await Task.Delay(options.CurrentValue.InboxCheckInterval, clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>Processes every order that is due now; returns how many were looked at.</summary>
    public async Task<int> DrainOnceAsync(CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue;
        var due = await inbox.DueAsync(settings.Concurrency * 8, cancellationToken);
        if (due.Count == 0)
        {
            return 0;
        }

        await Parallel.ForEachAsync(due, new ParallelOptions { MaxDegreeOfParallelism = settings.Concurrency, CancellationToken = cancellationToken },
            async (orderUuid, ct) => await HandleAsync(orderUuid, ct));
        return due.Count;
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
