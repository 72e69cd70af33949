using CmpWaldurAdapter.Chat;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Tenants;

namespace CmpWaldurAdapter.Testing.Chat;

/// <summary>Holds a settle until opened, or fails it.</summary>
public sealed class SettleGate
{
    private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Exception? _failure;
    private int _failures;

    public TaskCompletionSource ReachedSource { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public Task Reached => ReachedSource.Task;

    public void Open() => _open.TrySetResult();

    /// <summary>The next <paramref name="times"/> settles fail with <paramref name="failure"/> (every one by default).</summary>
    public void Fail(Exception failure, int times = int.MaxValue) => (_failure, _failures) = (failure, times);

    public async Task PassAsync()
    {
        ReachedSource.TrySetResult();
        if (_failure is { } failure && Interlocked.Decrement(ref _failures) >= 0)
        {
            throw failure;
        }

        await _open.Task;
    }
}

/// <summary>The ledger's chat credits, each settle passing <paramref name="gate"/> first.</summary>
public sealed class GatedChatCredits(IChatCredits ledger, SettleGate gate) : IChatCredits
{
    public Task<ChatHoldAttempt> HoldAsync(Subscription subscription, string requestId, ApiKeyProof? key, CancellationToken cancellationToken) =>
        ledger.HoldAsync(subscription, requestId, key, cancellationToken);

    public async Task<long> SettleAsync(ChatHold hold, CancellationToken cancellationToken)
    {
        await gate.PassAsync();
        return await ledger.SettleAsync(hold, cancellationToken);
    }

    public Task ReleaseAsync(ChatHold hold, CancellationToken cancellationToken) => ledger.ReleaseAsync(hold, cancellationToken);
}
