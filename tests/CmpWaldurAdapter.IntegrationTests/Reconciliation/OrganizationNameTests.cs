using System.Text.Json.Nodes;
using CmpWaldurAdapter.Cli;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.IntegrationTests.Tenants;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Serilog.Core;

namespace CmpWaldurAdapter.IntegrationTests.Reconciliation;

public sealed class OrganizationNameOnSqliteTests() : OrganizationNameTests(DatabaseProvider.Sqlite);

public sealed class OrganizationNameOnPostgresTests() : OrganizationNameTests(DatabaseProvider.Postgres);

/// <summary>
/// <c>cmp-adapter reconcile</c> names organizations recorded without a name (credits granted before their first
/// order) from Waldur, one lookup each, and leaves named ones alone. Every request sent to the Waldur fake is checked
/// against the pinned spec when the bed is disposed.
/// </summary>
public abstract class OrganizationNameTests(DatabaseProvider provider) : IAsyncLifetime
{
    private const string LookupPattern = "/api/customers/[0-9a-f-]+/";

    private TenantTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await TenantTestBed.CreateAsync(provider);
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private async Task<(int Exit, List<JsonObject> Drifts)> ReconcileAsync(params string[] args)
    {
        var output = new StringWriter();
        var context = new CommandContext(output, new StringWriter(), builder =>
        {
            builder.Configuration.AddInMemoryCollection(_bed.Settings);
            builder.Services.AddSingleton<ILogEventSink>(_bed.Logs);
        });
        var exit = await AdapterCli.RunAsync(["reconcile", .. args, "--output", "json"], context);
        Assert.NotEqual(ExitCodes.Error, exit);
        var drifts = JsonNode.Parse(output.ToString())!["drifts"]!.AsArray().Select(d => d!.AsObject());
        return (exit, drifts.Where(d => d["kind"]!.GetValue<string>() == "NamelessOrganization").ToList());
    }

    private Task<Dictionary<Guid, string>> NamesAsync() =>
        _bed.QueryAsync(db => db.Customers.AsNoTracking().ToDictionaryAsync(c => c.Id, c => c.Name));

    private static Dictionary<Guid, string> ByOrganization(IEnumerable<JsonObject> drifts) =>
        drifts.ToDictionary(d => Guid.Parse(d["subject"]!.GetValue<string>()), d => d["outcome"]!.GetValue<string>());

    [Fact]
    public async Task Reconcile_names_nameless_organizations_from_Waldur_leaves_named_ones_and_goes_on_past_a_failure()
    {
        var ledger = _bed.Services.GetRequiredService<CreditLedger>();
        var waldurNames = new Dictionary<Guid, string>
        {
            [Guid.NewGuid()] = "Acme Research",
            [Guid.NewGuid()] = "Borealis Labs",
            [Guid.NewGuid()] = "Cobalt Institute",
        };
        foreach (var (organization, name) in waldurNames)
        {
            _bed.Waldur.AddCustomer(organization, name);
            await ledger.GrantAsync(organization, 100, "granted before the first order");
        }

        var unknown = Guid.NewGuid();
        await ledger.GrantAsync(unknown, 100, "an organization Waldur does not know");
        var named = Guid.NewGuid();
        _bed.Waldur.AddCustomer(named, "Renamed in Waldur");
        await _bed.QueryAsync(db =>
        {
            db.Customers.Add(new Customer { Id = named, Name = "Kept name", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow });
            return db.SaveChangesAsync();
        });
        var granted = await NamesAsync();
        Assert.All(waldurNames.Keys.Append(unknown), organization => Assert.Equal(string.Empty, granted[organization]));

        var dry = await ReconcileAsync("--dry-run");

        Assert.Equal(ExitCodes.Unfinished, dry.Exit);
        Assert.Equal(waldurNames.Keys.ToDictionary(o => o, _ => "Found"), ByOrganization(dry.Drifts));
        Assert.Equal(granted, await NamesAsync());

        // Waldur refuses the first lookup of the run (not retried), whichever organization it is for.
        _bed.Waldur.Upstream.Fail("GET", LookupPattern, 403);
        var lookupsBefore = _bed.Waldur.Upstream.Count("GET", LookupPattern);

        var run = await ReconcileAsync();

        Assert.Equal(ExitCodes.Unfinished, run.Exit);
        var failed = Assert.Single(run.Drifts, d => d["outcome"]!.GetValue<string>() == "Failed");
        var refused = Guid.Parse(failed["subject"]!.GetValue<string>());
        var names = await NamesAsync();
        foreach (var (organization, name) in waldurNames)
        {
            Assert.Equal(organization == refused ? string.Empty : name, names[organization]);
        }

        Assert.Equal(waldurNames.Keys.Where(o => o != refused).Order(), run.Drifts.Where(d => d["outcome"]!.GetValue<string>() == "Fixed").Select(d => Guid.Parse(d["subject"]!.GetValue<string>())).Order());
        Assert.Equal((string.Empty, "Kept name"), (names[unknown], names[named]));
        Assert.Equal(waldurNames.Count + 1, _bed.Waldur.Upstream.Count("GET", LookupPattern) - lookupsBefore);

        var again = await ReconcileAsync();

        Assert.Equal(ExitCodes.Success, again.Exit);
        Assert.Equal(new Dictionary<Guid, string> { [refused] = "Fixed" }, ByOrganization(again.Drifts));
        names = await NamesAsync();
        Assert.All(waldurNames, pair => Assert.Equal(pair.Value, names[pair.Key]));
        Assert.Equal((string.Empty, "Kept name"), (names[unknown], names[named]));
        Assert.Equal(0, _bed.Waldur.Upstream.Count("GET", $"/api/customers/{named}/"));
        Assert.Equal(3, _bed.Waldur.Upstream.Count("GET", $"/api/customers/{unknown}/"));
    }
}
