using System.Collections.Concurrent;

namespace CmpWaldurAdapter.Chat;

/// <summary>
/// Settles plain (non-streamed) answers while they are sent. The message's price is held durably before the
/// agent runs, so those credits cannot be spent twice; writing the charge need not hold the answer back
/// (authorize, deliver, capture). The request still ends only once its settle has, so a graceful shutdown
/// waits for it. A settle that fails leaves the hold to expire and be released: that answer is free, never
/// charged twice.
/// </summary>
public sealed class AnswerSettlements(IChatCredits credits, ILogger<AnswerSettlements> logger)
{
    private readonly ConcurrentDictionary<Task, byte> _pending = new();

    /// <summary>Starts settling <paramref name="hold"/>; the task never faults.</summary>
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
