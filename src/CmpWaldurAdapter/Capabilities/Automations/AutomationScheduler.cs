using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Quartz;

namespace CmpWaldurAdapter.Capabilities.Automations;

/// <summary>
/// Runs automation subscriptions on the Quartz cron expression in their <c>schedule</c> setting (UTC). Every
/// check runs each subscription's latest firing not yet run, if it is within the grace period; the unique
/// (subscription, firing) row makes a firing run once even when replicas check at the same time.
/// </summary>
public sealed class AutomationScheduler(
    AutomationService automations,
    CapabilityPipeline pipeline,
    IDbContextFactory<AdapterDbContext> dbs,
    IOptions<AutomationOptions> options,
    ILogger<AutomationScheduler> logger)
{
    /// <summary>Runs the firings due at <paramref name="now"/>; returns how many runs were started.</summary>
    public async Task<int> RunDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        List<Subscription> subscriptions;
        await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
        {
            subscriptions = await db.Subscriptions.AsNoTracking()
                .Where(s => s.State == SubscriptionState.Active && !s.Paused && !s.Downscaled).ToListAsync(cancellationToken);
        }

        var started = 0;
        foreach (var subscription in subscriptions)
        {
            if (pipeline.OfferingOf(subscription) is not { } offering || !offering.Has(Capability.Automation))
            {
                continue;
            }

            var configuration = JsonNode.Parse(subscription.Configuration) as JsonObject ?? [];
            if (configuration["schedule"] is not JsonValue value || value.GetValueKind() != JsonValueKind.String || value.GetValue<string>().Trim() is not { Length: > 0 } schedule)
            {
                continue;
            }

            DateTimeOffset? latest;
            try
            {
                latest = LatestFiring(schedule, now, options.Value.MissedFiringGrace);
            }
            catch (FormatException)
            {
                logger.LogWarning("Subscription {SubscriptionId} has an invalid schedule; it is not run on a schedule", subscription.Id);
                continue;
            }

            if (latest is not { } firing)
            {
                continue;
            }

            await using (var db = await dbs.CreateDbContextAsync(cancellationToken))
            {
                if (await db.AutomationRuns.AnyAsync(r => r.SubscriptionId == subscription.Id && r.ScheduledFor == firing, cancellationToken))
                {
                    continue;
                }
            }

            var (caller, refusal) = pipeline.Authorize(subscription, null, Capability.Automation, AutomationService.What);
            if (refusal is not null)
            {
                continue;
            }

            var (status, _, _) = await automations.RunAsync(caller!, "schedule", Input(configuration), $"schedule:{subscription.Id:N}:{firing.UtcTicks}", firing, cancellationToken);
            if (status != StatusCodes.Status409Conflict)
            {
                started++;
            }
        }

        return started;
    }

    /// <summary>The schedule's last firing in (now − grace, now], or null.</summary>
    internal static DateTimeOffset? LatestFiring(string schedule, DateTimeOffset now, TimeSpan grace)
    {
        var cron = new CronExpression(schedule, TimeZoneInfo.Utc);
        DateTimeOffset? latest = null;
        var next = cron.GetNextValidTimeAfter(now - grace);
        for (var i = 0; i < 100_000 && next is { } firing && firing <= now; i++)
        {
            latest = firing;
            next = cron.GetNextValidTimeAfter(firing);
        }

        return latest;
    }

    /// <summary>The <c>schedule_input</c> setting when it is JSON, else an empty object.</summary>
    private static string Input(JsonObject configuration)
    {
        if (configuration["schedule_input"] is JsonValue value && value.GetValueKind() == JsonValueKind.String)
        {
            try
            {
                return JsonNode.Parse(value.GetValue<string>())?.ToJsonString() ?? "{}";
            }
            catch (JsonException)
            {
            }
        }

        return configuration["schedule_input"] is JsonObject inline ? inline.ToJsonString() : "{}";
    }
}

/// <summary>
/// The Quartz job that runs <see cref="AutomationScheduler.RunDueAsync"/> (on one replica per firing when clustered),
/// after marking failed the runs a stopped adapter left running.
/// </summary>
[DisallowConcurrentExecution]
public sealed class RunScheduledAutomationsJob(AutomationScheduler scheduler, AutomationService automations, TimeProvider clock) : IJob
{
    public static readonly JobKey Key = new("run-scheduled-automations", "automations");

    public async ValueTask Execute(IJobExecutionContext context, CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        await automations.FailInterruptedAsync(now, cancellationToken);
        await scheduler.RunDueAsync(now, cancellationToken);
    }
}
