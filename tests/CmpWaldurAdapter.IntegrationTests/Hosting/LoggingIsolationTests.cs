using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

/// <summary>Tests run many hosts in one process: each host's logs must reach its own sinks, not the last host's.</summary>
public sealed class LoggingIsolationTests
{
    [Fact]
    public async Task Two_hosts_in_one_process_keep_their_logs_apart()
    {
        await using var first = await OrderTestBed.CreateAsync();
        await using var second = await OrderTestBed.CreateAsync();
        await first.StartServicesAsync();
        await second.StartServicesAsync(); // started last: it would own a process-wide static logger

        var order = first.Waldur.PlaceCreateOrder(first.Offering, first.ValidAttributes());
        Assert.Equal(OrderOutcome.Completed, await first.Processor.ProcessAsync(order, CancellationToken.None));

        Assert.Contains(first.Logs.Lines, line => line.Contains(order.ToString(), StringComparison.Ordinal));
        Assert.DoesNotContain(second.Logs.Lines, line => line.Contains(order.ToString(), StringComparison.Ordinal));
    }
}
