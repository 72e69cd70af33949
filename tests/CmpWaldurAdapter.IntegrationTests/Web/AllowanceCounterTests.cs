using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Web;

public sealed class AllowanceCountersOnSqliteTests() : AllowanceCounterTests(DatabaseProvider.Sqlite);

public sealed class AllowanceCountersOnPostgresTests() : AllowanceCounterTests(DatabaseProvider.Postgres);

/// <summary>The database's allowance counters under concurrent uses, and their cleaning, on each database.</summary>
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

    [Fact]
    public async Task Requests_racing_for_the_last_uses_of_a_shared_counter_take_all_their_rules_or_none()
    {
        // Each request takes a counter of its own and the shared one, in either order: the shared three go to three
        // requests, the others keep no counter of their own, and no two requests wait for each other in a circle.
        var counters = _bed.Services.GetRequiredService<AllowanceCounters>();
        var shared = new AllowanceRule("shared|day", 3, TimeSpan.FromDays(1), Fixed: true);
        var refusals = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => Task.Run(() =>
        {
            var own = new AllowanceRule($"own|{i}", 5, TimeSpan.FromMinutes(1), Fixed: true);
            return counters.TakeAsync(i % 2 == 0 ? [own, shared] : [shared, own], CancellationToken.None);
        })));

        Assert.Equal(3, refusals.Count(r => r is null));
        Assert.All(refusals.OfType<AllowanceRefusal>(), r => Assert.Equal(shared, r.Rule));
        Assert.Equal(3, (await counters.UsedAsync([shared], CancellationToken.None))[shared.Key]);
        var ownCounters = await _bed.QueryAsync(db => db.Allowances.Where(a => a.Key.StartsWith("own|")).Select(a => a.Used).ToListAsync());
        Assert.Equal([1, 1, 1], ownCounters);
    }

    [Fact]
    public async Task Counters_whose_window_ended_longer_ago_than_the_longest_window_are_deleted_by_later_takes()
    {
        var counters = _bed.Services.GetRequiredService<AllowanceCounters>();
        var now = DateTimeOffset.UtcNow;
        var minute = new AllowanceRule("visitor-minute|old", 10, TimeSpan.FromMinutes(1), Fixed: true);
        var recent = new AllowanceRule("visitor-minute|recent", 10, TimeSpan.FromMinutes(1), Fixed: true);
        Assert.Null(await counters.TakeAsync([minute], now - TimeSpan.FromDays(2), CancellationToken.None));
        Assert.Null(await counters.TakeAsync([recent], now - TimeSpan.FromHours(1), CancellationToken.None));

        // Swept every few hundred takes, not on each: a minute's counter stays until the longest window (a day) has passed.
        var busy = new AllowanceRule("busy", int.MaxValue, TimeSpan.FromDays(1), Fixed: true);
        for (var take = 0; take < 500; take++)
        {
            Assert.Null(await counters.TakeAsync([busy], now, CancellationToken.None));
        }

        var keys = await _bed.QueryAsync(db => db.Allowances.OrderBy(a => a.Key).Select(a => a.Key).ToListAsync());
        Assert.Equal(["busy", "visitor-minute|recent"], keys);
    }
}
