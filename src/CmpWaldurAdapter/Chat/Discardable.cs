namespace CmpWaldurAdapter.Chat;

/// <summary>
/// Work started before it is known to be needed (a message's retrieval, run while its credits are held), dropped when it
/// turns out not to be. The upstream metrics count a call cut by <see cref="DiscardAsync"/> as discarded: no caller
/// left and nothing timed out. The work reaches them through the async flow, as <see cref="RunDeadline"/> does.
/// </summary>
public sealed class Discardable : IDisposable
{
    private static readonly AsyncLocal<Discardable?> Current = new();

    private readonly CancellationToken _caller;
    private readonly CancellationTokenSource _work;
    private volatile bool _discarded;

    public Discardable(CancellationToken caller)
    {
        _caller = caller;
        _work = CancellationTokenSource.CreateLinkedTokenSource(caller);
    }

    /// <summary>The discardable work the current code is part of, if any.</summary>
    public static Discardable? Active => Current.Value;

    /// <summary>Dropped by <see cref="DiscardAsync"/> while its caller was still there (one who left cancelled it first).</summary>
    public bool Discarded => _discarded && !_caller.IsCancellationRequested;

    /// <summary>Starts the work, this active in its flow alone (set inside an async method, it never reaches the caller's).</summary>
    public async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> work)
    {
        Current.Value = this;
        return await work(_work.Token);
    }

    public Task DiscardAsync()
    {
        _discarded = true;
        return _work.CancelAsync();
    }

    public void Dispose() => _work.Dispose();
}
