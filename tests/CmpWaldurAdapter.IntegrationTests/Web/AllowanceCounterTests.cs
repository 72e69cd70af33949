using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class AllowanceCountersOnSqliteTests() : AllowanceCounterTests(DatabaseProvider.Sqlite);

public sealed class AllowanceCountersOnPostgresTests() : AllowanceCounterTests(DatabaseProvider.Postgres);

/// <summary>The database's allowance counters under concurrent first uses, on each database.</summary>
public abstract class AllowanceCounterTests(DatabaseProvider provider) : IAsyncLifetime
{
    private BuyerWebTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await BuyerWebTestBed.CreateAsync(provider);
        await _bed.StartAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Uses_racing_for_a_counter_that_does_not_exist_yet_are_all_taken_while_there_is_room()
    {
        // A widget opened and its first message sent at once start two sessions together: neither may be refused
        // because the other created the counter in between.
        var counters = _bed.Services.GetRequiredService<AllowanceCounters>();
        for (var round = 0; round < 5; round++)
        {
            var rule = new AllowanceRule($"race|{round}", 12, TimeSpan.FromHours(1), Fixed: true);
            var refusals = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => counters.TakeAsync([rule], CancellationToken.None))));

            Assert.All(refusals, Assert.Null);
            Assert.Equal(8, (await counters.UsedAsync([rule], CancellationToken.None))[rule.Key]);
        }

        // And a full counter still refuses.
        var full = new AllowanceRule("race|full", 3, TimeSpan.FromHours(1), Fixed: true);
        var taken = await Task.WhenAll(Enumerable.Range(0, 6).Select(_ => Task.Run(() => counters.TakeAsync([full], CancellationToken.None))));
        Assert.Equal(3, taken.Count(r => r is null));
        Assert.Equal(3, (await counters.UsedAsync([full], CancellationToken.None))[full.Key]);
    }
}
