using System.Collections.Concurrent;
using System.Threading.Channels;
using CmpWaldurAdapter.Orders;

namespace CmpWaldurAdapter.Events;

/// <summary>
/// Runs the teardowns RESOURCE events find due (<see cref="OrderProcessor.TearDownTerminatedAsync"/>) one at a time off the
/// event path: upstream calls that are slow, or time out and are retried, must not hold back the events queued behind them.
/// Nothing here is the only record: the subscription is already terminating and its teardown recorded, so a teardown
/// dropped (the queue is full), abandoned at shutdown or lost with the process is done by the periodic sweep (here or on
/// another replica), and the teardown's lease keeps two from running at once. At shutdown, after the event listener has
/// stopped, what is queued is still done within the host's shutdown timeout; the rest is left to the sweep.
/// </summary>
public sealed class TearDownWorker(OrderProcessor orders, ILogger<TearDownWorker> logger) : IHostedLifecycleService, IDisposable
{
    /// <summary>Resources queued at most; more are left to the sweep (a mass termination by staff, say).</summary>
    internal const int Capacity = 256;

    private readonly Channel<TearDown> _queue = Channel.CreateBounded<TearDown>(new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });

    // Queued and not yet taken: a repeated event adds nothing.
    private readonly ConcurrentDictionary<Guid, byte> _queued = new();
    private readonly CancellationTokenSource _abandon = new();
    private Task _running = Task.CompletedTask;

    /// <summary>
    /// Queues the teardown of a resource Waldur showed terminated, or with <paramref name="resume"/> only one begun before
    /// Waldur erased it (<see cref="OrderProcessor.ResumeTearDownAsync"/>).
    /// </summary>
    public void Enqueue(Guid resourceUuid, bool resume)
    {
        if (!_queued.TryAdd(resourceUuid, 0))
        {
            return;
        }

        if (!_queue.Writer.TryWrite(new TearDown(resourceUuid, resume)))
        {
            _queued.TryRemove(resourceUuid, out _);
            logger.LogInformation("Resource {ResourceUuid}: {Capacity} teardowns are queued already (or the adapter is stopping); the next resource sweep does this one", resourceUuid, Capacity);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _running = Task.Run(RunAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>After every hosted service has stopped (no event queues more), finishes what is queued within the shutdown timeout.</summary>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        try
        {
            await _running.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Cancelled steps leave the teardown recorded and the subscription terminating; the lease is released.
            logger.LogWarning("Teardowns were still running or queued at shutdown; the next resource sweep finishes them");
            await _abandon.CancelAsync();
            await ((Task)_running).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task RunAsync()
    {
        await foreach (var (resourceUuid, resume) in _queue.Reader.ReadAllAsync(CancellationToken.None))
        {
            _queued.TryRemove(resourceUuid, out _);
            if (_abandon.IsCancellationRequested)
            {
                continue;
            }

            try
            {
                if (resume)
                {
                    await orders.ResumeTearDownAsync(resourceUuid, _abandon.Token);
                }
                else
                {
                    await orders.TearDownTerminatedAsync(resourceUuid, _abandon.Token);
                }
            }
            catch (Exception exception) when (!_abandon.IsCancellationRequested)
            {
                // A failure of the attempt itself is recorded and logged by it; this is the database being away.
                logger.LogWarning(exception, "The teardown of resource {ResourceUuid} could not be run; the next resource sweep tries again", resourceUuid);
            }
            catch (Exception)
            {
                // Abandoned at shutdown: left to the sweep.
            }
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _abandon.Dispose();

    private readonly record struct TearDown(Guid ResourceUuid, bool Resume);
}
