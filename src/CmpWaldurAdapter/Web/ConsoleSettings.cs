using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Forms;
using CmpWaldurAdapter.Core.Orders;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.EntityFrameworkCore;

namespace CmpWaldurAdapter.Web;

/// <summary>Where a setting appears in the console's Configuration tab.</summary>
public enum SettingGroup
{
    Branding,
    Behaviour,
    Offering,
}

public sealed record ConsoleSetting(FormField Field, SettingGroup Group);

/// <summary>The outcome of a console save: errors by field key (nothing saved), or what happened.</summary>
public sealed record ConsoleSaveResult(IReadOnlyDictionary<string, string> Errors, string Message)
{
    public bool Saved => Errors.Count == 0;
}

/// <summary>
/// The console's settings: the offering's changeable options (its <c>resource_options</c>, as a Waldur Update
/// order validates them) plus branding and behaviour settings every agent has. A save validates every field,
/// writes the subscription's stored configuration exactly as an Update order does (same JSON, version bumped),
/// then runs the provisioners' Update steps, so a setting the flow's prompt uses reaches the flow the same way.
/// </summary>
public sealed partial class ConsoleSettings(
    OfferingCatalogue catalogue,
    ServedOfferings offerings,
    IEnumerable<ITenantProvisioner> provisioners,
    IDbContextFactory<AdapterDbContext> dbs,
    TimeProvider clock,
    ILogger<ConsoleSettings> logger)
{
    public const int MaxWelcomeLength = 500;

    private static readonly FormField[] Common =
    [
        new("agent_name", FormFieldType.String, "Agent name", MaxLength: 60),
        new("welcome_message", FormFieldType.Text, "Welcome message", MaxLength: MaxWelcomeLength),
        new("brand_colour", FormFieldType.String, "Brand colour (hex)", Default: "#2563eb", MaxLength: 7),
        new("tone", FormFieldType.SelectString, "Tone", Choices: ["friendly", "formal", "concise"]),
        new("language", FormFieldType.SelectString, "Language", Choices: ["en", "de", "fr", "es", "et", "nl"]),
        new("escalate_after", FormFieldType.Integer, "Escalate after N unanswered questions", Min: 1, Max: 10),
    ];

    private static readonly Dictionary<string, SettingGroup> CommonGroups = new(StringComparer.Ordinal)
    {
        ["agent_name"] = SettingGroup.Branding,
        ["welcome_message"] = SettingGroup.Branding,
        ["brand_colour"] = SettingGroup.Branding,
        ["avatar_url"] = SettingGroup.Branding,
        ["tone"] = SettingGroup.Behaviour,
        ["personality"] = SettingGroup.Behaviour,
        ["language"] = SettingGroup.Behaviour,
        ["languages"] = SettingGroup.Behaviour,
        ["escalate_after"] = SettingGroup.Behaviour,
    };

    public CatalogueEntry? OfferingOf(Tenants.Subscription subscription) =>
        offerings.Find(subscription.OfferingUuid) is { } binding ? catalogue.Find(binding.Slug) : null;

    /// <summary>The settings the console shows for the offering, in display order.</summary>
    public static IReadOnlyList<ConsoleSetting> SettingsOf(CatalogueEntry offering)
    {
        // The same form an Update order is validated against: resource_options, or the whole form without them.
        var form = offering.ResourceOptions.Count > 0 ? offering.ResourceOptionsForm : offering.OrderForm;
        var fields = form.Fields.ToList();
        fields.AddRange(Common.Where(c => fields.All(f => f.Key != c.Key)));
        return fields.Select(f => new ConsoleSetting(f, CommonGroups.GetValueOrDefault(f.Key, SettingGroup.Offering))).ToList();
    }

    public static JsonObject ConfigurationOf(Tenants.Subscription subscription) => JsonNode.Parse(subscription.Configuration) as JsonObject ?? [];

    /// <summary>A display value: the stored one, else the field's default.</summary>
    public static string ValueOf(JsonObject configuration, FormField field) =>
        configuration.TryGetPropertyValue(field.Key, out var value) && value is not null
            ? value is JsonArray array ? string.Join(",", array.Select(v => v?.ToString())) : value.ToString()
            : field.Default ?? string.Empty;

    public async Task<ConsoleSaveResult> SaveAsync(Guid subscriptionId, IReadOnlyDictionary<string, string?> input, CancellationToken cancellationToken)
    {
        await using var db = await dbs.CreateDbContextAsync(cancellationToken);
        var subscription = await db.Subscriptions.SingleAsync(s => s.Id == subscriptionId, cancellationToken);
        var offering = OfferingOf(subscription)
            ?? throw new InvalidOperationException("This agent's offering is not served by this adapter right now.");
        var current = ConfigurationOf(subscription);
        var values = (JsonObject)current.DeepClone();
        var errors = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var setting in SettingsOf(offering))
        {
            var field = setting.Field;
            if (!input.TryGetValue(field.Key, out var raw))
            {
                continue;
            }

            raw = raw?.Trim() ?? string.Empty;
            if (raw.Length == 0)
            {
                if (field.Required)
                {
                    errors[field.Key] = $"{field.Label} is required.";
                }
                else
                {
                    values.Remove(field.Key);
                }

                continue;
            }

            if (field.Key == "brand_colour" && !ColourPattern().IsMatch(raw))
            {
                errors[field.Key] = "Brand colour must be a hex colour such as #2563eb.";
                continue;
            }

            JsonNode node = field.Type == FormFieldType.SelectStringMulti
                ? new JsonArray(raw.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => (JsonNode?)JsonValue.Create(v)).ToArray())
                : JsonValue.Create(raw);
            var checkedValue = new OrderForm([field]).ValidateChange(new JsonObject { [field.Key] = node }, []);
            if (!checkedValue.IsValid)
            {
                errors[field.Key] = checkedValue.Errors[0];
                continue;
            }

            values[field.Key] = checkedValue.Values[field.Key]!.DeepClone();
        }

        if (errors.Count > 0)
        {
            return new ConsoleSaveResult(errors, "Nothing was saved: correct the fields marked below.");
        }

        if (JsonNode.DeepEquals(values, current))
        {
            return new ConsoleSaveResult(errors, "No changes to save.");
        }

        subscription.Configuration = values.ToJsonString();
        subscription.ConfigurationVersion++;
        subscription.UpdatedAt = clock.GetUtcNow();
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateConcurrencyException)
        {
            return new ConsoleSaveResult(new Dictionary<string, string> { [""] = "The settings changed meanwhile (an order or another tab). Reload and save again." }, "Nothing was saved.");
        }

        logger.LogInformation("Console saved configuration version {ConfigurationVersion} of subscription {SubscriptionId}", subscription.ConfigurationVersion, subscription.Id);
        return new ConsoleSaveResult(errors, await ApplyAsync(db, subscription, values, cancellationToken));
    }

    /// <summary>The Update steps an order would run (e.g. <c>langflow-flow-config</c>), with the console's configuration.</summary>
    private async Task<string> ApplyAsync(AdapterDbContext db, Tenants.Subscription subscription, JsonObject configuration, CancellationToken cancellationToken)
    {
        var workspace = await db.Workspaces.SingleAsync(w => w.Id == subscription.WorkspaceId, cancellationToken);
        var context = new ProvisioningContext
        {
            Db = db,
            Order = new OrderDetails { Resource_uuid = subscription.ResourceUuid },
            Subscription = subscription,
            Workspace = workspace,
            Configuration = configuration,
            Notes = [],
        };
        try
        {
            foreach (var step in provisioners.SelectMany(p => p.StepsFor(OrderType.Update)))
            {
                await step.ExecuteAsync(context, cancellationToken);
            }

            await db.SaveChangesAsync(cancellationToken);
            return context.Notes.Count > 0 ? string.Join(" ", context.Notes) : "Your new settings were saved.";
        }
        catch (Exception exception) when (exception is TransientProvisioningException or PermanentProvisioningException or HttpRequestException)
        {
            logger.LogWarning("Console save of subscription {SubscriptionId}: the agent was not updated: {Reason}", subscription.Id, exception.Message);
            return "Your settings were saved, but the agent could not be updated right now. Save again in a few minutes.";
        }
    }

    [GeneratedRegex("^#[0-9a-fA-F]{6}$")]
    private static partial Regex ColourPattern();
}
