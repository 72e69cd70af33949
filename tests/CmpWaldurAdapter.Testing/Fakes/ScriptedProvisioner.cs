using System.Collections.Concurrent;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Provisioning;

namespace CmpWaldurAdapter.Testing.Fakes;

/// <summary>
/// A provisioner whose steps count their runs and fail on demand (transiently, permanently, or by
/// "crashing" the process mid-step), to test the order pipeline's promises without an agent runtime.
/// </summary>
public sealed class ScriptedProvisioner : ITenantProvisioner
{
    private readonly ConcurrentDictionary<string, int> _runs = new();
    private readonly ConcurrentDictionary<string, Func<ProvisioningContext, Exception?>> _failures = new();
    private readonly ConcurrentDictionary<string, Func<Task>> _holds = new();
    private readonly ConcurrentDictionary<string, Task> _holdsOnce = new();
    private readonly ConcurrentDictionary<string, Action<ProvisioningContext>> _changes = new();

    public static readonly string[] CreateSteps = ["create-runtime", "create-knowledge-base", "configure-agent"];
    public static readonly string[] UpdateSteps = ["update-agent"];
    public static readonly string[] TerminateSteps = ["remove-knowledge-base", "remove-runtime"];

    /// <summary>Cancelled by a step that simulates the process dying after its side effect.</summary>
    public CancellationTokenSource? Crash { get; set; }

    public int Runs(string step) => _runs.TryGetValue(step, out var n) ? n : 0;

    public int TotalRuns => _runs.Values.Sum();

    public void FailTransiently(string step, int times)
    {
        var left = times;
        _failures[step] = _ => Interlocked.Decrement(ref left) >= 0 ? new TransientProvisioningException($"{step}: upstream unavailable") : null;
    }

    /// <summary>
    /// The step does its work, then waits until <paramref name="until"/> completes (keeps orders in flight, e.g. across an outage),
    /// or until its token is cancelled, as a step waiting on upstream calls stops.
    /// </summary>
    public void HoldUntil(string step, Task until) => _holds[step] = () => until;

    /// <summary>As <see cref="HoldUntil"/>, each run of the step until its own task: the first run until the first, and so on; later runs are not held.</summary>
    public void HoldRunsUntil(string step, params Task[] untilEach)
    {
        var next = new ConcurrentQueue<Task>(untilEach);
        _holds[step] = () => next.TryDequeue(out var until) ? until : Task.CompletedTask;
    }

    /// <summary>The step's next run does its work, then waits until <paramref name="until"/> completes; later runs do not wait (one slow order among others).</summary>
    public void HoldOnceUntil(string step, Task until) => _holdsOnce[step] = until;

    public void FailPermanently(string step, string message) =>
        _failures[step] = _ => new PermanentProvisioningException(message);

    /// <summary>The step fails no more (what made it fail was fixed upstream).</summary>
    public void Recover(string step) => _failures.TryRemove(step, out _);

    /// <summary>The step's next run also makes <paramref name="change"/> to what it is given (e.g. one the database refuses).</summary>
    public void ChangeOnce(string step, Action<ProvisioningContext> change) => _changes[step] = change;

    /// <summary>The step does its work, then the process "dies" before the completion is saved.</summary>
    public void CrashAfter(string step)
    {
        var once = 1;
        _failures[step] = _ =>
        {
            if (Interlocked.Exchange(ref once, 0) == 1)
            {
                Crash!.Cancel();
                return new OperationCanceledException(Crash.Token);
            }

            return null;
        };
    }

    public IReadOnlyList<ProvisioningStep> StepsFor(OrderType type) => (type switch
    {
        OrderType.Create or OrderType.Restore => CreateSteps,
        OrderType.Update => UpdateSteps,
        OrderType.Terminate => TerminateSteps,
        _ => [],
    }).Select(name => new ProvisioningStep(name, async (context, cancellationToken) =>
    {
        _runs.AddOrUpdate(name, 1, (_, n) => n + 1);
        context.Note($"{name} done");
        if (_changes.TryRemove(name, out var change))
        {
            change(context);
        }

        if (_holds.TryGetValue(name, out var hold))
        {
            await hold().WaitAsync(cancellationToken);
        }

        if (_holdsOnce.TryRemove(name, out var holdOnce))
        {
            await holdOnce.WaitAsync(cancellationToken);
        }

        if (_failures.TryGetValue(name, out var fail) && fail(context) is { } exception)
        {
            throw exception;
        }
    })).ToList();
}
