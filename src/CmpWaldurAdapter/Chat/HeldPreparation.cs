namespace CmpWaldurAdapter.Chat;

/// <summary>
/// A message's hold with its turn prepared meanwhile, as the chat API and the buyer pages take them. Retrieval needs
/// nothing from the hold, so it runs while the credits are held, its result used only once they are. The hold is
/// sent first: its round trip is usually the longer, and building the retrieval's request then overlaps it (about a
/// tenth of a millisecond off every answer). The preparation runs under a <see cref="Discardable"/>; a hold that
/// throws or is refused discards it (cancelled, its result or exception ignored): the hold decides what the
/// message answers.
/// </summary>
public static class HeldPreparation
{
    /// <summary>Sends <paramref name="hold"/>, then starts <paramref name="prepare"/>, and waits for the hold.</summary>
    public static async Task<HeldPreparation<T>> StartAsync<T>(Func<Task<ChatHoldAttempt>> hold, Func<CancellationToken, Task<T>> prepare, ILogger logger, CancellationToken cancellationToken)
    {
        var holding = hold();
        var held = new HeldPreparation<T>(prepare, logger, cancellationToken);
        try
        {
            held.Attempt = await holding;
        }
        catch
        {
            await held.DiscardAsync();
            held.Dispose();
            throw;
        }

        if (held.Attempt.Hold is null)
        {
            await held.DiscardAsync();
        }

        return held;
    }
}

/// <summary>A message's hold (<see cref="HeldPreparation.StartAsync"/>) and its preparation, usable only once held.</summary>
public sealed class HeldPreparation<T> : IDisposable
{
    private readonly Discardable _early;
    private readonly Task<T> _preparing;
    private readonly ILogger _logger;
    private bool _discarded;

    internal HeldPreparation(Func<CancellationToken, Task<T>> prepare, ILogger logger, CancellationToken cancellationToken)
    {
        _early = new Discardable(cancellationToken);
        _preparing = _early.RunAsync(prepare);
        _logger = logger;
    }

    /// <summary>The hold, or why there is none.</summary>
    public ChatHoldAttempt Attempt { get; internal set; } = null!;

    /// <summary>The prepared turn: only for a hold that was taken and whose preparation was not discarded.</summary>
    public Task<T> Prepared => Attempt.Hold is not null && !_discarded
        ? _preparing
        : throw new InvalidOperationException("A preparation is used only once its message's credits are held.");

    /// <summary>Drops the preparation: cancelled, and its result or exception ignored.</summary>
    public async Task DiscardAsync()
    {
        if (_discarded)
        {
            return;
        }

        _discarded = true;
        await _early.DiscardAsync();
        try
        {
            await _preparing;
        }
        catch (Exception exception)
        {
            // Nothing of it is used: the hold decided what this message answers.
            _logger.LogDebug("A message's preparation was dropped after its hold: {Reason}", exception.Message);
        }
    }

    public void Dispose() => _early.Dispose();
}
