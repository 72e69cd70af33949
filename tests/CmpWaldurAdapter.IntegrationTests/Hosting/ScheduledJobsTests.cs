using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Quartz;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

/// <summary>How the scheduled jobs (Quartz, clustered on PostgreSQL) live through restarts and shutdowns of a replica.</summary>
public sealed class ScheduledJobsTests : IAsyncLifetime
{
    private CreditTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await CreditTestBed.CreateAsync(DatabaseProvider.Postgres);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task A_restart_keeps_each_triggers_beat_instead_of_starting_its_schedule_again()
    {
        _bed.Settings["Credits:ReservationSweepInterval"] = "00:00:02";
        var trigger = new TriggerKey(ReleaseExpiredHoldsJob.Key.Name + "-trigger", ReleaseExpiredHoldsJob.Key.Group);
        var first = await _bed.StartServerAsync();
        var scheduler = await first.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
        DateTimeOffset? fired = null;
        await Eventually.TrueAsync(async () => (fired = (await scheduler.GetTrigger(trigger))!.PreviousFireTimeUtc) is not null, because: "the sweeper fires every 2 s");
        await first.DisposeAsync();

        var second = await _bed.StartServerAsync();
        var restarted = await (await second.Services.GetRequiredService<ISchedulerFactory>().GetScheduler()).GetTrigger(trigger);

        // Declared again from the new start, the trigger's next firing would be a whole interval after that start, off
        // the beat it kept: a pod restarting more often than an hourly job's interval would never run it.
        var sinceFired = restarted!.NextFireTimeUtc!.Value - fired!.Value;
        Assert.True(sinceFired > TimeSpan.Zero && sinceFired.Ticks % TimeSpan.FromSeconds(2).Ticks == 0, $"next firing {sinceFired} after the last one, not a multiple of the 2 s interval");
    }

    [Fact]
    public async Task A_stopping_replica_asks_its_running_jobs_to_stop_and_waits_for_them()
    {
        var signals = new JobSignals();
        var server = await _bed.StartServerAsync(services => services
            .AddSingleton(signals)
            .AddQuartz(quartz => quartz.AddJob<LongJob>(job => job.WithIdentity(LongJob.Key).StoreDurably())));
        var scheduler = await server.Services.GetRequiredService<ISchedulerFactory>().GetScheduler();
        await scheduler.TriggerJob(LongJob.Key);
        await signals.Started.Task.WaitAsync(TimeSpan.FromSeconds(30));

        var stopping = server.DisposeAsync().AsTask();

        // Not interrupted, the job would hold the shutdown until Kubernetes kills the pod half-way through its work.
        await signals.Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await stopping.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(signals.Unwound.Task.IsCompletedSuccessfully, "the shutdown waited for the job to unwind");
    }

    public sealed class JobSignals
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Cancelled { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Unwound { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Works until it is asked to stop, then takes a moment to put its work in order, as a usage run does.</summary>
    public sealed class LongJob(JobSignals signals) : IJob
    {
        public static readonly JobKey Key = new("long-job", "tests");

        public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
        {
            signals.Started.TrySetResult();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                signals.Cancelled.TrySetResult();
                await Task.Delay(TimeSpan.FromMilliseconds(300), CancellationToken.None);
                signals.Unwound.TrySetResult();
                throw;
            }
        }
    }
}
