using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Credits;
using CmpWaldurAdapter.Credits;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>credits grant</c> and <c>credits balance</c>: an organization's credits.</summary>
public static class CreditsCommands
{
    public static Command Build(CommandContext context)
    {
        var customer = new Option<Guid>("--customer") { Description = "The organization (Waldur customer UUID).", Required = true };
        var amount = new Option<long>("--amount")
        {
            Description = "Credits to add (a positive whole number).",
            Required = true,
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : null;
                if (long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var credits) && credits > 0)
                {
                    return credits;
                }

                result.AddError($"--amount must be a positive whole number of credits, not '{text}'.");
                return 0;
            },
        };
        var reason = new Option<string>("--reason") { Description = "Why (kept in the ledger).", Required = true };
        var requestId = new Option<string?>("--request-id")
        {
            Description = "Idempotency key: running the same grant again with it adds nothing more. Without it the key is derived from "
                + "--customer, --amount and --reason (the reason trimmed), so rerunning the same command adds nothing more; "
                + "to grant the same amount for the same reason a second time on purpose, give a new --request-id.",
        };
        var newCustomer = new Option<bool>("--new-customer")
        {
            Description = "Fund an organization that has not ordered here yet (credits in advance of its first order; later grants to it "
                + "need no flag). Without it, a grant to a customer UUID the adapter does not know is refused: a typo or a project UUID would fund nobody.",
        };

        var grant = new Command("grant", "Add credits to an organization's balance (ledger funding). Prints the new balance. "
            + "Safe to rerun: the same command (same customer, amount and reason, or the same --request-id) grants once and says it was a replay.")
        {
            customer, amount, reason, requestId, newCustomer,
        };
        grant.SetAction((parse, cancellationToken) => GrantAsync(context, parse, parse.GetValue(customer), parse.GetValue(amount), parse.GetValue(reason)!, parse.GetValue(requestId), parse.GetValue(newCustomer), cancellationToken));

        var balanceCustomer = new Option<Guid>("--customer") { Description = "The organization (Waldur customer UUID).", Required = true };
        var balance = new Command("balance", "Show an organization's credits: balance, held by requests in progress, and available.") { balanceCustomer };
        balance.SetAction((parse, cancellationToken) => BalanceAsync(context, parse, parse.GetValue(balanceCustomer), cancellationToken));

        return new Command("credits", "Organization credit balances.") { grant, balance };
    }

    private static async Task<int> GrantAsync(CommandContext context, ParseResult parse, Guid customer, long amount, string reason, string? requestId, bool newCustomer, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(reason))
        {
            await context.Error.WriteLineAsync("grant: --reason must say why the credits are granted.");
            return ExitCodes.Error;
        }

        // Without --request-id the grant is named by what it is, so running the same command again adds nothing more.
        var id = requestId ?? DerivedRequestId(customer, amount, reason);
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        var organization = await RecordedOrganizationAsync(host.Services, customer, cancellationToken);
        // A typo, or a project UUID pasted for the organization's, would fund nobody and leave the real organization
        // unfunded. Waldur-funded mode refuses every grant with its own reason, so it is not asked about the customer.
        if (!organization.Known && !newCustomer
            && host.Services.GetRequiredService<IOptionsMonitor<CreditsOptions>>().CurrentValue.Funding == CreditFunding.Ledger)
        {
            await context.Error.WriteLineAsync($"grant: no organization with UUID {customer} has ordered here: check that it is the Waldur customer "
                + "(organization) UUID, not a project's. Nothing granted. To fund an organization in advance of its first order, add --new-customer.");
            return ExitCodes.Error;
        }

        GrantResult result;
        try
        {
            result = await host.Services.GetRequiredService<CreditLedger>().GrantAsync(customer, amount, reason, id, cancellationToken);
        }
        catch (Exception exception) when (exception is CreditFundingException or CreditRequestConflictException or ArgumentException)
        {
            await context.Error.WriteLineAsync("grant: " + exception.Message);
            return ExitCodes.Error;
        }

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new
            {
                customer,
                organization = organization.Name,
                granted = result.Granted,
                replayed = !result.Granted,
                requestId = id,
                credits = result.Credits,
                entry = result.EntryId,
                balance = result.Balance,
                available = result.Available,
            }, CliJson.Options));
        }
        else
        {
            await context.Output.WriteLineAsync(result.Granted
                ? $"Granted {result.Credits} credits to {Named(customer, organization)}. Balance {result.Balance}, available {result.Available}."
                : $"Replay: this grant was made before (request id {id}): nothing added. Balance {result.Balance}, available {result.Available}.");
        }

        return ExitCodes.Success;
    }

    /// <summary>
    /// What the adapter knows of the organization a grant is for: its recorded name (null while it has none), and whether
    /// it is known. Known is named (an order, or Waldur through the resource sync or reconcile, named it), owning a
    /// subscription (rows older than names are nameless), or granted credits before: a first grant to an organization
    /// that never ordered needs --new-customer, so the operator has vouched for the UUID once, and its top-ups (and reruns)
    /// need no flag until it orders.
    /// </summary>
    private static async Task<RecordedOrganization> RecordedOrganizationAsync(IServiceProvider services, Guid customer, CancellationToken cancellationToken)
    {
        await using var db = await services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken);
        var name = await db.Customers.AsNoTracking().Where(c => c.Id == customer).Select(c => c.Name).SingleOrDefaultAsync(cancellationToken);
        var known = !string.IsNullOrEmpty(name)
            || await db.Subscriptions.AnyAsync(s => s.CustomerId == customer, cancellationToken)
            || await db.LedgerEntries.AnyAsync(e => e.ScopeId == customer && e.Kind == LedgerEntryKind.Grant, cancellationToken);
        return new RecordedOrganization(known, string.IsNullOrEmpty(name) ? null : name);
    }

    private sealed record RecordedOrganization(bool Known, string? Name);

    /// <summary>The organization as the grant's output names it: its recorded name beside the UUID, or the UUID alone.</summary>
    private static string Named(Guid customer, RecordedOrganization organization) =>
        organization.Name is { } name ? $"{name} ({customer})" : customer.ToString();

    /// <summary>
    /// The request id of a grant given without <c>--request-id</c>: <c>grant:</c> and the SHA-256 (hex) of what names the
    /// grant (the customer, the amount, the reason trimmed but otherwise as typed), so the same command run again (a lost
    /// SSH session, a retry wrapper) replays instead of granting twice. The amount is part of the hash, so a derived id
    /// can never meet another amount (no conflict error for a corrected amount: that is another grant).
    /// </summary>
    internal static string DerivedRequestId(Guid customer, long amount, string reason)
    {
        // Customer and amount have fixed forms without a newline, and the reason comes last: the text is unambiguous.
        var named = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{customer:D}\n{amount}\n{reason.Trim()}");
        return "grant:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(named)));
    }

    private static async Task<int> BalanceAsync(CommandContext context, ParseResult parse, Guid customer, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        // Read Waldur now, past the cache: an operator must not take a stale (or never read) funding for today's.
        var (balance, fundingFailure) = await host.Services.GetRequiredService<CreditLedger>().FreshBalanceAsync(customer, cancellationToken);
        var covered = balance.CoveredOfferings is { } limited ? CoveredOfferings(host.Services, limited) : null;

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new
            {
                customer,
                balance = balance.Balance,
                reserved = balance.Reserved,
                available = balance.Available,
                funding = balance.Funding,
                fundedAt = balance.FundedAt,
                exists = balance.Exists,
                coveredOfferings = covered,
                stale = fundingFailure is not null,
                fundingError = fundingFailure,
            }, CliJson.Options));
            if (fundingFailure is not null)
            {
                await context.Error.WriteLineAsync(StaleFunding(customer, balance, fundingFailure));
                return ExitCodes.Error;
            }

            return ExitCodes.Success;
        }

        if (fundingFailure is not null)
        {
            // No table: a script reading it would take the last known value for today's.
            await context.Error.WriteLineAsync(StaleFunding(customer, balance, fundingFailure));
            return ExitCodes.Error;
        }

        if (!balance.Exists)
        {
            await context.Output.WriteLineAsync($"Organization {customer} has no credits yet.");
        }

        await Table.WriteAsync(context.Output, ["CUSTOMER", "BALANCE", "RESERVED", "AVAILABLE", "FUNDING"],
            [[customer.ToString(), Number(balance.Balance), Number(balance.Reserved), Number(balance.Available), balance.Funding.ToString()]]);
        if (covered is { Count: 0 })
        {
            await context.Output.WriteLineAsync("Limited: the organization's Waldur customer credit covers none of the offerings this adapter serves; their paid actions are refused.");
        }
        else if (covered is not null)
        {
            await context.Output.WriteLineAsync("Limited: the organization's Waldur customer credit covers only these offerings; the others' paid actions are refused.");
            await Table.WriteAsync(context.Output, ["OFFERING", "SLUG", "NAME"], covered.Select(o => new[] { o.Uuid.ToString(), o.Slug, o.Name }));
        }

        return ExitCodes.Success;
    }

    /// <summary>The one line saying Waldur's funding could not be read, with the last known balance labelled stale.</summary>
    private static string StaleFunding(Guid customer, CreditBalance balance, string failure)
    {
        var lastKnown = balance.FundedAt is { } at
            ? $"Last known (STALE, read from Waldur at {at.UtcDateTime.ToString("u", System.Globalization.CultureInfo.InvariantCulture)}): balance {Number(balance.Balance)}, reserved {Number(balance.Reserved)}, available {Number(balance.Available)}."
            : "No funding was ever read from Waldur for this organization: there is no last known balance.";
        return $"balance: the Waldur funding of organization {customer} could not be read ({failure}). {lastKnown}";
    }

    /// <summary>The covered offerings, named where this adapter serves them from its catalogue.</summary>
    private static List<CoveredOffering> CoveredOfferings(IServiceProvider services, IReadOnlyList<Guid> uuids)
    {
        var served = services.GetRequiredService<ServedOfferings>();
        var catalogue = services.GetRequiredService<OfferingCatalogue>();
        return uuids.Select(uuid => served.Find(uuid) is { } binding
                ? new CoveredOffering(uuid, binding.Slug, catalogue.Find(binding.Slug)?.Name)
                : new CoveredOffering(uuid, null, null))
            .ToList();
    }

    private sealed record CoveredOffering(Guid Uuid, string? Slug, string? Name);

    private static string Number(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
