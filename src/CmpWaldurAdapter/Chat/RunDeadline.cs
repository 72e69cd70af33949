namespace CmpWaldurAdapter.Chat;

/// <summary>
/// The limit of one agent run (<c>Chat:RunTimeout</c>). Its token ends the run when the caller leaves, when the time is
/// up, or when <see cref="CancelAsync"/> is called. The upstream metrics count a call this deadline cut as a timeout, and
/// one cut because its caller left as canceled; the deadline reaches them through the async flow, since the requests
/// are built far below (Refit, the streaming client).
/// </summary>
public sealed class RunDeadline : IDisposable
{
    private static readonly AsyncLocal<RunDeadline?> Current = new();

    private readonly CancellationTokenSource _time;
    private readonly CancellationTokenSource _run;

    private RunDeadline(TimeSpan timeout, CancellationToken caller)
    {
        _time = new CancellationTokenSource(timeout);
        _run = CancellationTokenSource.CreateLinkedTokenSource(caller, _time.Token);
    }

    /// <summary>The deadline of the run the current code is part of, if any.</summary>
    public static RunDeadline? Active => Current.Value;

    public CancellationToken Token => _run.Token;

    /// <summary>The time is up (not merely cancelled because the caller left).</summary>
    public bool Passed => _time.IsCancellationRequested;

    /// <summary>
    /// Starts a run's deadline, active in the calling method until disposed: synchronous, so the caller's async flow keeps it.
    /// </summary>
    public static RunDeadline Start(TimeSpan timeout, CancellationToken caller)
    {
        var deadline = new RunDeadline(timeout, caller);
        Current.Value = deadline;
        return deadline;
    }

    public Task CancelAsync() => _run.CancelAsync();

    public void Dispose()
    {
        // Calls the flow makes once the run is over are no part of it.
        if (Current.Value == this)
        {
            Current.Value = null;
        }

        _run.Dispose();
        _time.Dispose();
    }
}
