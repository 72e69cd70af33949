using CmpWaldurAdapter.Persistence;
using Quartz;

namespace CmpWaldurAdapter.Hosting;

/// <summary>
/// Holds <c>serve</c>'s background work back while the database lacks migrations this build knows (PostgreSQL before
/// <c>db migrate</c> ran): on the old schema the workers and jobs would only fail with SQL errors, over and over, until
/// it did. Once the schema is current it starts the Quartz scheduler (registered not to start by itself) and releases
/// the hosted workers (<see cref="SchemaGatedWorker{TWorker}"/>). Only this build's own migrations count, as for
/// readiness (<see cref="SchemaStatus"/>): a database a newer build migrated (a rollout, a rollback) holds nothing back.
/// </summary>
public sealed class SchemaGate(SchemaStatus schema, ISchedulerFactory schedulers, IHostApplicationLifetime lifetime, TimeProvider clock, ILogger<SchemaGate> logger) : BackgroundService
{
    /// <summary>How soon a schema found behind, or a database that did not answer, is read again.</summary>
    internal static readonly TimeSpan RecheckInterval = TimeSpan.FromSeconds(3);

    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the schema is current; cancelling (a stopping host) ends the wait at once.</summary>
    public Task WaitAsync(CancellationToken cancellationToken) => _open.Task.WaitAsync(cancellationToken);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await WaitForCurrentSchemaAsync(stoppingToken);
        var scheduler = await schedulers.GetScheduler(stoppingToken);
        await scheduler.Start(stoppingToken);
        // Once the host begins to stop, no job fires any more: the web server drains first (for up to the shutdown
        // timeout), and a usage run started meanwhile would be cut off when the pod is killed. Running jobs go on until
        // the scheduler's own stop asks them to end.
        lifetime.ApplicationStopping.Register(() => _ = scheduler.Standby().AsTask());
        _open.TrySetResult();
    }

    private async Task WaitForCurrentSchemaAsync(CancellationToken stoppingToken)
    {
        // Each reason to wait is said once: the schema is read again every few seconds, possibly for a long time.
        bool saidBehind = false, saidUnreadable = false;
        while (true)
        {
            try
            {
                var pending = await schema.PendingAsync(stoppingToken);
                if (pending.Count == 0)
                {
                    if (saidBehind || saidUnreadable)
                    {
                        logger.LogInformation("The database schema is current: the background workers and scheduled jobs start");
                    }

                    return;
                }

                if (!saidBehind)
                {
                    saidBehind = true;
                    logger.LogWarning(
                        "The background workers and scheduled jobs wait for 'cmp-adapter db migrate': the database lacks {PendingCount} migration(s) this build knows. Checked again every {RecheckInterval}",
                        pending.Count, RecheckInterval);
                }
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                if (!saidUnreadable)
                {
                    saidUnreadable = true;
                    logger.LogWarning("Could not read the database's applied migrations ({Error}); the background workers and scheduled jobs wait until it answers", exception.GetType().Name);
                }
            }

            await Task.Delay(RecheckInterval, clock, stoppingToken);
        }
    }
}

/// <summary>
/// Runs <typeparamref name="TWorker"/> once <see cref="SchemaGate"/> opens. Waiting, it stops at once with the host; running,
/// its failure is this service's, so the host stops and <c>serve</c> exits with an error as it did for the worker itself.
/// </summary>
public sealed class SchemaGatedWorker<TWorker>(TWorker worker, SchemaGate gate) : BackgroundService
    where TWorker : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await gate.WaitAsync(stoppingToken);
        // BackgroundService links the worker's stopping token to the one it was started with: this one stopping stops it.
        await worker.StartAsync(stoppingToken);
        await worker.ExecuteTask!;
    }
}
