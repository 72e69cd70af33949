using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Waldur.Api;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>orders list</c> and <c>orders process</c>: what Waldur wants from us, and doing it now.</summary>
public static class OrdersCommands
{
    public static Command Build(CommandContext context)
    {
        var list = new Command("list", "List the orders of the served offerings that wait for the provider (pending-provider, executing), with the adapter's progress on each.");
        list.SetAction((parse, cancellationToken) => ListAsync(context, parse, cancellationToken));

        var orderOption = new Option<Guid?>("--order") { Description = "Process only this order (UUID). Without it, every actionable order is processed." };
        var process = new Command("process", "Process orders now, in this process (the same pipeline serve runs), and print each outcome.") { orderOption };
        process.SetAction((parse, cancellationToken) => ProcessAsync(context, parse, parse.GetValue(orderOption), cancellationToken));

        return new Command("orders", "Waldur orders for the served offerings.") { list, process };
    }

    private static async Task<int> ListAsync(CommandContext context, ParseResult parse, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        var services = host.Services;
        var orders = await services.GetRequiredService<OrderPoller>().ListActionableAsync(cancellationToken);
        await using var db = await services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken);
        var uuids = orders.Select(o => o.Uuid).OfType<Guid>().ToList();
        var progress = await db.Orders.AsNoTracking().Where(o => uuids.Contains(o.OrderUuid)).ToDictionaryAsync(o => o.OrderUuid, cancellationToken);

        var rows = orders.Select(o =>
        {
            progress.TryGetValue(o.Uuid ?? Guid.Empty, out var record);
            return new OrderRow(o.Uuid, WaldurEnums.ToWire(o.Type), WaldurEnums.ToWire(o.State), o.Resource_name, o.Modified,
                record?.Phase.ToString() ?? "not seen", record?.LastError);
        }).ToList();

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(rows, CliJson.Options));
            return ExitCodes.Success;
        }

        await context.Output.WriteLineAsync(rows.Count == 0 ? "No orders wait for the provider." : $"{rows.Count} order(s) wait for the provider:");
        await Table.WriteAsync(context.Output, ["ORDER", "TYPE", "STATE", "RESOURCE", "MODIFIED", "ADAPTER", "LAST ERROR"],
            rows.Select(r => new[] { r.Uuid?.ToString(), r.Type, r.State, r.Resource, r.Modified?.ToString("u"), r.Progress, r.LastError }));
        return ExitCodes.Success;
    }

    private static async Task<int> ProcessAsync(CommandContext context, ParseResult parse, Guid? only, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        var services = host.Services;
        await services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        var processor = services.GetRequiredService<OrderProcessor>();
        var inbox = services.GetRequiredService<OrderInbox>();
        var targets = only is { } one
            ? [one]
            : (await services.GetRequiredService<OrderPoller>().ListActionableAsync(cancellationToken)).Select(o => o.Uuid).OfType<Guid>().ToList();

        var results = new List<ProcessRow>();
        foreach (var orderUuid in targets)
        {
            var started = services.GetRequiredService<TimeProvider>().GetUtcNow();
            try
            {
                var outcome = await processor.ProcessAsync(orderUuid, cancellationToken);
                if (outcome != OrderOutcome.Busy)
                {
                    await inbox.CompleteAsync(orderUuid, started, cancellationToken);
                }

                results.Add(new ProcessRow(orderUuid, outcome.ToString(), null));
            }
            catch (OrderDeferredException deferred)
            {
                // Leave it for the running service (or the next run) to retry.
                await inbox.EnqueueAsync(orderUuid, null, "cli", refeed: true, cancellationToken);
                await inbox.DeferAsync(orderUuid, deferred.Message, null, cancellationToken);
                results.Add(new ProcessRow(orderUuid, "Deferred", deferred.Message));
            }
        }

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(results, CliJson.Options));
        }
        else
        {
            await context.Output.WriteLineAsync(results.Count == 0 ? "No orders to process." : $"Processed {results.Count} order(s):");
            await Table.WriteAsync(context.Output, ["ORDER", "OUTCOME", "DETAIL"], results.Select(r => new[] { r.Uuid.ToString(), r.Outcome, r.Detail }));
        }

        var unfinished = results.Any(r => r.Outcome is nameof(OrderOutcome.Erred) or "Deferred" or nameof(OrderOutcome.Busy));
        return unfinished ? ExitCodes.Unfinished : ExitCodes.Success;
    }

    private sealed record OrderRow(Guid? Uuid, string? Type, string? State, string? Resource, DateTimeOffset? Modified, string Progress, string? LastError);

    private sealed record ProcessRow(Guid Uuid, string Outcome, string? Detail);
}
