using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Tenants;
using CmpWaldurAdapter.Web;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Cli;

/// <summary>
/// <c>subscriptions list</c> and <c>subscriptions show</c>: the buyers' agents as the adapter holds them;
/// <c>subscriptions replace-console-link</c>: a new console link for a buyer whose link was shared by mistake.
/// </summary>
public static class SubscriptionsCommands
{
    public static Command Build(CommandContext context)
    {
        var offering = new Option<string?>("--offering") { Description = "Only subscriptions of this offering (catalogue slug or Waldur offering UUID)." };
        var customer = new Option<Guid?>("--customer") { Description = "Only subscriptions of this organization (Waldur customer UUID)." };
        var state = new Option<SubscriptionState?>("--state") { Description = "Only subscriptions in this state (Provisioning, Active, Terminating, Terminated, Erred)." };
        var list = new Command("list", "List subscriptions with their offering, organization, state and upstream tenant.") { offering, customer, state };
        list.SetAction((parse, cancellationToken) => ListAsync(context, parse, parse.GetValue(offering), parse.GetValue(customer), parse.GetValue(state), cancellationToken));

        var id = new Argument<Guid>("subscription") { Description = "The subscription id (the resource's backend_id) or the Waldur resource UUID." };
        var show = new Command("show", "Show one subscription: settings, upstream tenant, live API keys.") { id };
        show.SetAction((parse, cancellationToken) => ShowAsync(context, parse, parse.GetValue(id), cancellationToken));

        var replaceId = new Argument<Guid>("subscription") { Description = "The subscription id (the resource's backend_id) or the Waldur resource UUID." };
        var replace = new Command("replace-console-link",
            "Replace the buyer console link (one shared by mistake): the resource's report gets a new one, then every earlier link and console session stops working.")
            { replaceId };
        replace.SetAction((parse, cancellationToken) => ReplaceConsoleLinkAsync(context, parse, parse.GetValue(replaceId), cancellationToken));

        return new Command("subscriptions", "The buyers' subscriptions (one per Waldur resource).") { list, show, replace };
    }

    /// <summary>Finds a subscription by its own id or by its Waldur resource UUID.</summary>
    internal static Task<Subscription?> FindAsync(AdapterDbContext db, Guid id, CancellationToken cancellationToken) =>
        db.Subscriptions.AsNoTracking().FirstOrDefaultAsync(s => s.Id == id || s.ResourceUuid == id, cancellationToken);

    private static async Task<int> ListAsync(CommandContext context, ParseResult parse, string? offering, Guid? customer, SubscriptionState? state, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        var served = host.Services.GetRequiredService<ServedOfferings>();
        Guid? offeringUuid = null;
        if (offering is not null)
        {
            offeringUuid = Guid.TryParse(offering, out var parsed) ? parsed : served.Offerings.FirstOrDefault(o => o.Slug == offering)?.Uuid;
            if (offeringUuid is null)
            {
                await context.Error.WriteLineAsync($"list: --offering '{offering}' is neither a UUID nor the slug of a served offering ({string.Join(", ", served.Offerings.Select(o => o.Slug))}).");
                return ExitCodes.Error;
            }
        }

        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken);
        var query = db.Subscriptions.AsNoTracking();
        if (offeringUuid is { } o)
        {
            query = query.Where(s => s.OfferingUuid == o);
        }

        if (customer is { } c)
        {
            query = query.Where(s => s.CustomerId == c);
        }

        if (state is { } st)
        {
            query = query.Where(s => s.State == st);
        }

        var rows = (await query.ToListAsync(cancellationToken)).OrderBy(s => s.CreatedAt).Select(s => Row(s, served)).ToList();
        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(rows, CliJson.Options));
            return ExitCodes.Success;
        }

        await context.Output.WriteLineAsync(rows.Count == 0 ? "No subscriptions." : $"{rows.Count} subscription(s):");
        await Table.WriteAsync(context.Output, ["SUBSCRIPTION", "RESOURCE", "OFFERING", "CUSTOMER", "STATE", "NAME", "CREATED"],
            rows.Select(r => new[] { r.Id.ToString(), r.ResourceUuid.ToString(), r.Offering, r.CustomerId.ToString(), r.State, r.Name, r.CreatedAt.ToString("u") }));
        return ExitCodes.Success;
    }

    private static async Task<int> ShowAsync(CommandContext context, ParseResult parse, Guid id, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken);
        if (await FindAsync(db, id, cancellationToken) is not { } subscription)
        {
            await context.Error.WriteLineAsync($"show: no subscription has the id or resource UUID {id}.");
            return ExitCodes.Error;
        }

        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.SubscriptionId == subscription.Id && k.RevokedAt == null).ToListAsync(cancellationToken);
        var row = Row(subscription, host.Services.GetRequiredService<ServedOfferings>());
        var detail = new
        {
            row.Id, row.ResourceUuid, row.Offering, row.OfferingUuid, row.CustomerId, row.WorkspaceId, row.Name, row.State,
            subscription.Paused, subscription.Downscaled,
            Configuration = JsonNode.Parse(subscription.Configuration),
            subscription.ConfigurationVersion,
            subscription.LangflowProjectId, subscription.LangflowFlowId, subscription.RagflowDatasetId,
            row.CreatedAt, subscription.UpdatedAt, subscription.TerminatedAt,
            Keys = keys.OrderBy(k => k.CreatedAt).Select(k => new { k.Id, k.Kind, k.Name, k.Prefix, k.CreatedAt, k.LastUsedAt }).ToList(),
        };

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(detail, CliJson.Options));
            return ExitCodes.Success;
        }

        string?[][] fields =
        [
            ["Subscription", detail.Id.ToString()], ["Resource", detail.ResourceUuid.ToString()], ["Offering", detail.Offering],
            ["Customer", detail.CustomerId.ToString()], ["Project", detail.WorkspaceId.ToString()], ["Name", detail.Name],
            ["State", detail.State + (detail.Paused ? " (paused)" : string.Empty) + (detail.Downscaled ? " (downscaled)" : string.Empty)],
            ["Settings", detail.Configuration?.ToJsonString()], ["Langflow project", detail.LangflowProjectId], ["Langflow flow", detail.LangflowFlowId],
            ["RAGFlow dataset", detail.RagflowDatasetId], ["Created", detail.CreatedAt.ToString("u")], ["Terminated", detail.TerminatedAt?.ToString("u")],
        ];
        await Table.WriteAsync(context.Output, ["FIELD", "VALUE"], fields);
        await context.Output.WriteLineAsync(keys.Count == 0 ? "No live API keys." : $"{keys.Count} live API key(s):");
        await Table.WriteAsync(context.Output, ["KEY", "KIND", "NAME", "PREFIX", "CREATED", "LAST USED"],
            detail.Keys.Select(k => new[] { k.Id.ToString(), k.Kind.ToString(), k.Name, k.Prefix, k.CreatedAt.ToString("u"), k.LastUsedAt?.ToString("u") }));
        return ExitCodes.Success;
    }

    private static async Task<int> ReplaceConsoleLinkAsync(CommandContext context, ParseResult parse, Guid id, CancellationToken cancellationToken)
    {
        using var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        Subscription? subscription;
        await using (var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken))
        {
            subscription = await FindAsync(db, id, cancellationToken);
        }

        if (subscription is null)
        {
            await context.Error.WriteLineAsync($"replace-console-link: no subscription has the id or resource UUID {id}.");
            return ExitCodes.Error;
        }

        if (subscription.State != SubscriptionState.Active)
        {
            await context.Error.WriteLineAsync($"replace-console-link: subscription {subscription.Id} is {subscription.State}; only an active subscription has a console link.");
            return ExitCodes.Error;
        }

        var replacement = await host.Services.GetRequiredService<ConsoleReportContributor>().RotateAsync(subscription, cancellationToken);
        if (replacement.Outcome != LinkReplacementOutcome.Replaced)
        {
            var failure = replacement.Failure is null ? string.Empty : $" (Waldur: {replacement.Failure})";
            await context.Error.WriteLineAsync($"replace-console-link: nothing was replaced: {replacement.Reason}{failure}.");
            return ExitCodes.Error;
        }

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { subscription = subscription.Id, resource = subscription.ResourceUuid, linkVersion = replacement.Version }, CliJson.Options));
            return ExitCodes.Success;
        }

        await context.Output.WriteLineAsync(
            $"Replaced: the report of resource {subscription.ResourceUuid} shows a new console link; earlier links and console sessions of subscription {subscription.Id} no longer work.");
        return ExitCodes.Success;
    }

    private static SubscriptionRow Row(Subscription s, ServedOfferings served) =>
        new(s.Id, s.ResourceUuid, served.Find(s.OfferingUuid)?.Slug ?? s.OfferingUuid.ToString(), s.OfferingUuid, s.CustomerId, s.WorkspaceId, s.Name, s.State.ToString(), s.CreatedAt);

    private sealed record SubscriptionRow(Guid Id, Guid ResourceUuid, string Offering, Guid OfferingUuid, Guid CustomerId, Guid WorkspaceId, string Name, string State, DateTimeOffset CreatedAt);
}
