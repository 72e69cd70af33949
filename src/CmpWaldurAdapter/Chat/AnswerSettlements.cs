using System.Collections.Concurrent;
using CmpWaldurAdapter.Waldur.Api;

namespace CmpWaldurAdapter.Chat;

/// <summary>
/// Settles plain (non-streamed) answers while they are sent. The message's price is held in the ledger before the
/// agent runs, so those credits cannot be spent twice; writing the charge need not hold the answer back
/// (authorize, deliver, capture), nor the next request on the client's connection. Settles still running
/// when the host stops are waited for after the server has stopped taking requests. A settle the database refuses
/// for the moment (a restart, a failover, a broken pooled connection) is tried again for about two minutes, well
/// within the hold's life; settling is idempotent by hold, so a retry never charges twice. One that still fails
/// leaves the hold to expire and be released: that answer is free, never charged twice.
/// </summary>
public sealed class AnswerSettlements(IChatCredits credits, ILogger<AnswerSettlements> logger) : IHostedLifecycleService
{
    /// <summary>Waits between attempts of a settle the database refused for the moment: about 100 s in all.</summary>
    internal static readonly TimeSpan[] RetryDelays = [.. new[] { 0.2, 0.5, 1, 2, 5, 10, 20, 30, 30 }.Select(TimeSpan.FromSeconds)];

    private readonly ConcurrentDictionary<Task, byte> _pending = new();

    /// <summary>
    /// Starts settling <paramref name="hold"/> in the background (<see cref="WhenSettledAsync"/> waits for it). The task
    /// returned ends once this settle has (it never fails: a settle that does is logged), for a caller that reads the ledger next.
    /// </summary>
    public Task Settle(ChatHold hold) => Track(SettleAsync(hold, firstAttempt: 0));

    /// <summary>
    /// Settles now, for a caller that tells the charge (a stream's usage chunk). When the database refuses it for the
    /// moment, the retries go on in the background and the credits held are what they charge.
    /// </summary>
    public async Task<long> SettleNowAsync(ChatHold hold)
    {
        try
        {
            return await credits.SettleAsync(hold, CancellationToken.None);
        }
        catch (Exception exception) when (UpstreamFailures.IsTransient(exception))
        {
            logger.LogWarning(exception, "Settling hold {Reservation} failed for the moment; it is tried again", hold.Reservation);
            _ = Track(SettleAsync(hold, firstAttempt: 1));
            return hold.Credits;
        }
    }

    private Task Track(Task settling)
    {
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

    private async Task SettleAsync(ChatHold hold, int firstAttempt)
    {
        for (var attempt = firstAttempt; ; attempt++)
        {
            try
            {
                if (attempt > 0)
                {
                    await Task.Delay(RetryDelays[attempt - 1]);
                }

                await credits.SettleAsync(hold, CancellationToken.None);
                return;
            }
            catch (Exception exception) when (attempt < RetryDelays.Length && UpstreamFailures.IsTransient(exception))
            {
                logger.LogWarning("Settling hold {Reservation} failed for the moment ({Reason}); attempt {Attempt} of {Attempts}", hold.Reservation, exception.Message, attempt + 1, RetryDelays.Length + 1);
            }
            catch (Exception exception)
            {
                logger.LogError(exception, "An answer was sent but its hold {Reservation} could not be settled; the hold is released when it expires", hold.Reservation);
                return;
            }
        }
    }
}
