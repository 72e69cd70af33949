using System.Collections.Concurrent;

namespace CmpWaldurAdapter.Chat;

/// <summary>
/// Settles plain (non-streamed) answers while they are sent. The message's price is held in the ledger before the
/// agent runs, so those credits cannot be spent twice; writing the charge need not hold the answer back
/// (authorize, deliver, capture), nor the next request on the client's connection. Settles still running
/// when the host stops are waited for after the server has stopped taking requests. A settle that fails leaves
/// the hold to expire and be released: that answer is free, never charged twice.
/// </summary>
public sealed class AnswerSettlements(IChatCredits credits, ILogger<AnswerSettlements> logger) : IHostedLifecycleService
{
    private readonly ConcurrentDictionary<Task, byte> _pending = new();

    /// <summary>
    /// Starts settling <paramref name="hold"/> in the background (<see cref="WhenSettledAsync"/> waits for it). The task
    /// returned ends once this settle has (it never fails: a settle that does is logged), for a caller that reads the ledger next.
    /// </summary>
    public Task Settle(ChatHold hold)
    {
        var settling = SettleAsync(hold);
        if (!settling.IsCompleted)
        {
            _pending.TryAdd(settling, 0);
            _ = settling.ContinueWith(static (done, pending) => ((ConcurrentDictionary<Task, byte>)pending!).TryRemove(done, out _),
                _pending, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        return settling;
    }

    /// <summary>Completes when every settle started before the call has ended (for callers that read the ledger next).</summary>
    public Task WhenSettledAsync() => Task.WhenAll(_pending.Keys);

    /// <summary>After the server has stopped (no answer can start another settle), waits for the last ones within the shutdown timeout.</summary>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        try
        {
            await WhenSettledAsync().WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            logger.LogWarning("{Count} answers were not settled before shutdown; their holds are released when they expire", _pending.Count);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task SettleAsync(ChatHold hold)
    {
        try
        {
            await credits.SettleAsync(hold, CancellationToken.None);
        }
        catch (Exception exception)
        {
            logger.LogError(exception, "An answer was sent but its hold {Reservation} could not be settled; the hold is released when it expires", hold.Reservation);
        }
    }
}
