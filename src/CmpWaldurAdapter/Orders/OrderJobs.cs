using Quartz;

namespace CmpWaldurAdapter.Orders;

/// <summary>Polling-only mode: lists actionable orders from Waldur on a schedule.</summary>
[DisallowConcurrentExecution]
public sealed class PollOrdersJob(OrderPoller poller) : IJob
{
    public static readonly JobKey Key = new("poll-orders", "orders");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await poller.PollAsync(cancellationToken);
}

/// <summary>The safety net under events: re-feeds orders stuck in pending-provider or executing, so a lost message is late, never lost.</summary>
[DisallowConcurrentExecution]
public sealed class RefeedStuckOrdersJob(OrderPoller poller) : IJob
{
    public static readonly JobKey Key = new("refeed-stuck-orders", "orders");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken) =>
        await poller.RefeedStuckAsync(cancellationToken);
}

/// <summary>A full poll when the process starts, retried in the background until Waldur answers.</summary>
public sealed class StartupOrderPoll(OrderPoller poller, TimeProvider clock, ILogger<StartupOrderPoll> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var schedule = new Core.Orders.RetrySchedule(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(2));
        for (var attempt = 0; !stoppingToken.IsCancellationRequested; attempt++)
        {
            try
            {
                await poller.PollAsync(stoppingToken);
                return;
            }
            catch (Exception exception) when (!stoppingToken.IsCancellationRequested)
            {
                var delay = schedule.DelayFor(attempt, Random.Shared.NextDouble());
                logger.LogWarning(exception, "Start-up poll of Waldur failed; retrying in {Delay}", delay);
                await Task.Delay(delay, clock, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }
}
