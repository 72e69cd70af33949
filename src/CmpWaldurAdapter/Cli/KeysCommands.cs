using System.CommandLine;
using System.Text.Json;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Core.Subscriptions;
using CmpWaldurAdapter.Persistence;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Cli;

/// <summary><c>keys list|create|revoke</c>: a subscription's API keys, for operators helping a buyer.</summary>
public static class KeysCommands
{
    public static Command Build(CommandContext context)
    {
        var listSubscription = SubscriptionOption();
        var list = new Command("list", "List a subscription's live API keys (prefixes only: keys are stored hashed).") { listSubscription };
        list.SetAction((parse, cancellationToken) => ListAsync(context, parse, parse.GetValue(listSubscription), cancellationToken));

        var createSubscription = SubscriptionOption();
        var kind = new Option<ApiKeyKind>("--kind") { Description = "Secret (server-side API calls) or Publishable (widget sessions).", DefaultValueFactory = _ => ApiKeyKind.Secret };
        var name = new Option<string?>("--name") { Description = "A name that tells the buyer what the key is for." };
        var create = new Command("create", "Create an API key and print it once; it cannot be shown again.") { createSubscription, kind, name };
        create.SetAction((parse, cancellationToken) => CreateAsync(context, parse, parse.GetValue(createSubscription), parse.GetValue(kind), parse.GetValue(name), cancellationToken));

        var revokeSubscription = SubscriptionOption();
        var key = new Argument<Guid>("key") { Description = "The key id (from keys list)." };
        var revoke = new Command("revoke", "Revoke an API key; it stops working at once on every replica.") { revokeSubscription, key };
        revoke.SetAction((parse, cancellationToken) => RevokeAsync(context, parse, parse.GetValue(revokeSubscription), parse.GetValue(key), cancellationToken));

        return new Command("keys", "Subscription API keys.") { list, create, revoke };
    }

    private static Option<Guid> SubscriptionOption() =>
        new("--subscription") { Description = "The subscription id (the resource's backend_id) or the Waldur resource UUID.", Required = true };

    private static async Task<(IHost Host, Tenants.Subscription? Subscription)> OpenAsync(CommandContext context, ParseResult parse, Guid id, CancellationToken cancellationToken)
    {
        var host = context.BuildHost(parse);
        await host.Services.MigrateEmbeddedDatabaseAsync(cancellationToken);
        await using var db = await host.Services.GetRequiredService<IDbContextFactory<AdapterDbContext>>().CreateDbContextAsync(cancellationToken);
        var subscription = await SubscriptionsCommands.FindAsync(db, id, cancellationToken);
        if (subscription is null)
        {
            await context.Error.WriteLineAsync($"{parse.CommandResult.Command.Name}: no subscription has the id or resource UUID {id}.");
        }

        return (host, subscription);
    }

    private static async Task<int> ListAsync(CommandContext context, ParseResult parse, Guid id, CancellationToken cancellationToken)
    {
        var (host, subscription) = await OpenAsync(context, parse, id, cancellationToken);
        using var _ = host;
        if (subscription is null)
        {
            return ExitCodes.Error;
        }

        var keys = await host.Services.GetRequiredService<ApiKeyService>().ListAsync(subscription.Id, cancellationToken);
        var rows = keys.Select(k => new { k.Id, k.Kind, k.Name, k.Prefix, k.CreatedAt, k.LastUsedAt }).ToList();
        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { subscription = subscription.Id, keys = rows }, CliJson.Options));
            return ExitCodes.Success;
        }

        await context.Output.WriteLineAsync(rows.Count == 0 ? $"Subscription {subscription.Id} has no live API keys." : $"{rows.Count} live API key(s) of subscription {subscription.Id}:");
        await Table.WriteAsync(context.Output, ["KEY", "KIND", "NAME", "PREFIX", "CREATED", "LAST USED"],
            rows.Select(k => new[] { k.Id.ToString(), k.Kind.ToString(), k.Name, k.Prefix, k.CreatedAt.ToString("u"), k.LastUsedAt?.ToString("u") }));
        return ExitCodes.Success;
    }

    private static async Task<int> CreateAsync(CommandContext context, ParseResult parse, Guid id, ApiKeyKind kind, string? name, CancellationToken cancellationToken)
    {
        var (host, subscription) = await OpenAsync(context, parse, id, cancellationToken);
        using var _ = host;
        if (subscription is null)
        {
            return ExitCodes.Error;
        }

        if (subscription.State is SubscriptionState.Terminating or SubscriptionState.Terminated)
        {
            await context.Error.WriteLineAsync($"create: subscription {subscription.Id} is {subscription.State}; it gets no new keys.");
            return ExitCodes.Error;
        }

        CreatedKey created;
        try
        {
            created = await host.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, kind, name ?? string.Empty, cancellationToken);
        }
        catch (InvalidOperationException exception)
        {
            await context.Error.WriteLineAsync("create: " + exception.Message);
            return ExitCodes.Error;
        }

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new
            {
                subscription = subscription.Id,
                id = created.Key.Id,
                kind = created.Key.Kind,
                name = created.Key.Name,
                prefix = created.Key.Prefix,
                key = created.Plaintext,
            }, CliJson.Options));
            return ExitCodes.Success;
        }

        await context.Output.WriteLineAsync($"Created {created.Key.Kind} key '{created.Key.Name}' ({created.Key.Id}) for subscription {subscription.Id}.");
        await context.Output.WriteLineAsync("Give it to the buyer now; it is stored hashed and cannot be shown again:");
        await context.Output.WriteLineAsync(created.Plaintext);
        return ExitCodes.Success;
    }

    private static async Task<int> RevokeAsync(CommandContext context, ParseResult parse, Guid id, Guid keyId, CancellationToken cancellationToken)
    {
        var (host, subscription) = await OpenAsync(context, parse, id, cancellationToken);
        using var _ = host;
        if (subscription is null)
        {
            return ExitCodes.Error;
        }

        var revoked = await host.Services.GetRequiredService<ApiKeyService>().RevokeAsync(subscription.Id, keyId, cancellationToken);
        if (!revoked)
        {
            await context.Error.WriteLineAsync($"revoke: subscription {subscription.Id} has no live key {keyId}.");
            return ExitCodes.Error;
        }

        if (parse.GetValue(CommandContext.OutputOption) == OutputFormat.Json)
        {
            await context.Output.WriteLineAsync(JsonSerializer.Serialize(new { subscription = subscription.Id, key = keyId, revoked = true }, CliJson.Options));
        }
        else
        {
            await context.Output.WriteLineAsync($"Revoked key {keyId} of subscription {subscription.Id}.");
        }

        return ExitCodes.Success;
    }
}
