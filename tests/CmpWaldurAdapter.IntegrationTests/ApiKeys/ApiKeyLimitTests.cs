using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.IntegrationTests.Chat;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.ApiKeys;

/// <summary>
/// The per-subscription live-key limit holds for requests that run at once: each is counted again with its own key
/// in, so requests racing for the last place cannot all take it. The race is staged: every racing request has counted
/// before any of them inserts its key.
/// </summary>
public abstract class ApiKeyLimitTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const int Racing = 16;

    private readonly InsertGate _gate = new(Racing);
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() =>
        _bed = await ChatTestBed.StartAsync((_, _) => { }, services => services.AddDatabaseInterceptor(provider, _gate), provider);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Requests_racing_for_the_last_place_leave_at_most_the_limit_of_live_keys_and_the_others_get_409()
    {
        var me = await _bed.SubscribeAsync(credits: 0, knowledge: false);
        var keys = _bed.Services.GetRequiredService<ApiKeyService>();
        for (var count = (await keys.ListAsync(me.Subscription.Id, CancellationToken.None)).Count; count < ApiKeyService.MaxKeysPerSubscription - 1; count++)
        {
            await keys.CreateAsync(me.Subscription.Id, ApiKeyKind.Secret, "filler", CancellationToken.None);
        }

        using var http = _bed.Http(me.Key);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/keys")).StatusCode);

        _gate.Armed = true;
        var answers = await Task.WhenAll(Enumerable.Range(0, Racing).Select(i => http.PostAsJsonAsync("/v1/keys", new { name = $"racer {i}" })));
        Assert.True(_gate.AllArrived, "every racing request counted the live keys before any inserted its own");

        var created = answers.Count(a => a.StatusCode == HttpStatusCode.Created);
        var live = (await keys.ListAsync(me.Subscription.Id, CancellationToken.None)).Count;
        Assert.True(created <= 1, $"{created} of {Racing} racing requests created a key; one place was free");
        Assert.Equal(ApiKeyService.MaxKeysPerSubscription - 1 + created, live);
        foreach (var refused in answers.Where(a => a.StatusCode != HttpStatusCode.Created))
        {
            Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
            var error = JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("too_many_keys", error["code"]!.GetValue<string>());
            Assert.Equal($"A subscription can have at most {ApiKeyService.MaxKeysPerSubscription} keys; delete one first.", error["message"]!.GetValue<string>());
        }

        // Once the race is over, a request alone is answered as before: 409 when full, 201 when a place is free.
        var after = await http.PostAsJsonAsync("/v1/keys", new { name = "after" });
        Assert.Equal(live < ApiKeyService.MaxKeysPerSubscription ? HttpStatusCode.Created : HttpStatusCode.Conflict, after.StatusCode);
    }

    /// <summary>Once armed, holds each save of a new key until <paramref name="expected"/> of them wait (10 s at most), then lets them all through.</summary>
    private sealed class InsertGate(int expected) : SaveChangesInterceptor
    {
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _waiting;

        public bool Armed { get; set; }

        public bool AllArrived => _all.Task.IsCompleted;

        public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            if (Armed && eventData.Context!.ChangeTracker.Entries<ApiKey>().Any(e => e.State == EntityState.Added))
            {
                if (Interlocked.Increment(ref _waiting) == expected)
                {
                    _all.TrySetResult();
                }

                await Task.WhenAny(_all.Task, Task.Delay(TimeSpan.FromSeconds(10), CancellationToken.None));
            }

            return result;
        }
    }
}

public sealed class ApiKeyLimitOnSqliteTests() : ApiKeyLimitTests(DatabaseProvider.Sqlite);

public sealed class ApiKeyLimitOnPostgresTests() : ApiKeyLimitTests(DatabaseProvider.Postgres);
