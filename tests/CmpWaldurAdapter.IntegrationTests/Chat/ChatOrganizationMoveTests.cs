using System.Net;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

public sealed class ChatOrganizationMoveOnSqliteTests() : ChatOrganizationMoveTests(DatabaseProvider.Sqlite);

public sealed class ChatOrganizationMoveOnPostgresTests() : ChatOrganizationMoveTests(DatabaseProvider.Postgres);

/// <summary>A Waldur project moved to another organization: its agent's messages are charged to the new organization.</summary>
public abstract class ChatOrganizationMoveTests(DatabaseProvider provider) : IAsyncLifetime
{
    private readonly BeforeStatement _recordedMeanwhile = new();
    private ChatTestBed _bed = null!;

    public async Task InitializeAsync() =>
        _bed = await ChatTestBed.StartAsync((_, _) => { }, services => services.AddDatabaseInterceptor(provider, _recordedMeanwhile), provider);

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task After_the_move_event_a_message_is_charged_to_the_new_organization()
    {
        var me = await _bed.SubscribeAsync(credits: 10, knowledge: false);
        using var http = _bed.Http(me.Key);
        // Charged to the first organization, and the key's authentication is remembered for a few seconds.
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi"}"""))).StatusCode);
        var before = await _bed.LedgerAsync(me.Customer);
        Assert.Equal(1, before.Charges);

        var newOrganization = Guid.NewGuid();
        await _bed.Services.GetRequiredService<CreditLedger>().GrantAsync(newOrganization, 10, "test credits");
        _bed.Tenants.Waldur.MoveProject(me.Workspace.Id, newOrganization, "New organization");
        // What the RESOURCE event (or the periodic sweep) does.
        await _bed.Services.GetRequiredService<ResourceStateSync>().SyncAsync(me.Resource, CancellationToken.None);

        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("/v1/chat/completions", ChatTestBed.Json("""{"message":"Hi again"}"""))).StatusCode);

        Assert.Equal(before, await _bed.LedgerAsync(me.Customer));
        Assert.Equal(new LedgerState(10 - before.Charged, 0, 1, before.Charged), await _bed.LedgerAsync(newOrganization));
        var (subscription, workspace, name) = await _bed.Tenants.QueryAsync(async db => (
            await db.Subscriptions.SingleAsync(s => s.Id == me.Subscription.Id),
            await db.Workspaces.SingleAsync(w => w.Id == me.Workspace.Id),
            await db.Customers.Where(c => c.Id == newOrganization).Select(c => c.Name).SingleAsync()));
        Assert.Equal((newOrganization, newOrganization, "New organization"), (subscription.CustomerId, workspace.CustomerId, name));
        Assert.Contains(_bed.Tenants.Logs.Lines, line => line.Contains($"moved from organization {me.Customer} to organization {newOrganization}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_new_organization_recorded_nameless_by_a_credit_grant_while_the_move_records_it_is_named_and_the_move_completes_with_no_database_error()
    {
        var me = await _bed.SubscribeAsync(credits: 0, knowledge: false);
        var newOrganization = Guid.NewGuid();
        _bed.Tenants.Waldur.MoveProject(me.Workspace.Id, newOrganization, "New organization");
        // The grant records the organization just before the move's own insert of it.
        _recordedMeanwhile.Stage(
            new Regex("""^\s*INSERT INTO "?customers"?""", RegexOptions.IgnoreCase),
            () => _bed.Services.GetRequiredService<CreditLedger>().GrantAsync(newOrganization, 10, "test credits"));

        await _bed.Services.GetRequiredService<ResourceStateSync>().SyncAsync(me.Resource, CancellationToken.None);

        Assert.Equal(1, _recordedMeanwhile.Ran);
        var (subscription, workspace, names) = await _bed.Tenants.QueryAsync(async db => (
            await db.Subscriptions.SingleAsync(s => s.Id == me.Subscription.Id),
            await db.Workspaces.SingleAsync(w => w.Id == me.Workspace.Id),
            await db.Customers.Where(c => c.Id == newOrganization).Select(c => c.Name).ToListAsync()));
        Assert.Equal((newOrganization, newOrganization), (subscription.CustomerId, workspace.CustomerId));
        Assert.Equal(["New organization"], names);
        Assert.Equal(10, (await _bed.LedgerAsync(newOrganization)).Balance);
        Assert.Contains(_bed.Tenants.Logs.Lines, line => line.Contains($"moved from organization {me.Customer} to organization {newOrganization}", StringComparison.Ordinal));
        Assert.Empty(_bed.Tenants.Logs.DatabaseErrors()); // the insert that found the row did nothing: no unique violation logged
    }
}
