using System.Globalization;
using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Core.Forms;
using CmpWaldurAdapter.Waldur;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Offerings;

/// <summary>Settings for registering the catalogue in Waldur (configuration section <c>Registration</c>).</summary>
public sealed class RegistrationOptions
{
    public const string SectionName = "Registration";

    /// <summary>The Waldur organization (customer) that is the service provider and owns the offerings.</summary>
    public Guid? ServiceProviderCustomerUuid { get; set; }
}

/// <summary>One offering's registration outcome: its Waldur UUID and what changed (nothing, on a second run).</summary>
public sealed record RegisteredOffering(string Slug, Guid? Uuid, IReadOnlyList<string> Changes)
{
    /// <summary>The public try page linked from the offering's description.</summary>
    public Uri? TryUrl { get; init; }

    /// <summary>The Langflow id of the shared demo flow the try page runs (null without Langflow, or in a dry run that would create it).</summary>
    public string? DemoFlowId { get; init; }

    public bool Changed => Changes.Count > 0;
}

/// <summary>
/// Makes Waldur hold exactly what the catalogue says for each offering: category, offering (type
/// Marketplace.Slurm, the site-agent type), order form, editable options, usage components, plan and
/// prices, active state. Every call is preceded by a read, so a second run changes nothing.
/// </summary>
public sealed class OfferingRegistrar(IWaldurApi waldur, IOptions<RegistrationOptions> options, IOptions<WebOptions> web, IOptions<WaldurOptions> waldurOptions, DemoFlowPublisher demoFlows, ILogger<OfferingRegistrar> logger)
{
    public const string OfferingType = "Marketplace.Slurm";

    /// <summary>
    /// Reads every local file registration needs (the demo flows) before Waldur is asked anything; throws
    /// <see cref="Provisioning.FlowTemplateException"/> naming the file that cannot be read.
    /// </summary>
    public void CheckLocalFiles(IEnumerable<CatalogueEntry> entries)
    {
        foreach (var entry in entries)
        {
            demoFlows.Check(entry);
        }
    }

    public async Task<IReadOnlyList<RegisteredOffering>> RegisterAsync(IEnumerable<CatalogueEntry> entries, bool dryRun, CancellationToken cancellationToken)
    {
        // A demo flow that cannot be read must stop registration before an offering is created or activated without it.
        entries = entries.ToList();
        CheckLocalFiles(entries);
        var provider = options.Value.ServiceProviderCustomerUuid
            ?? throw new InvalidOperationException("Registration:ServiceProviderCustomerUuid is not set: name the Waldur organization that provides the offerings.");
        if ((await waldur.ListServiceProvidersAsync(provider, cancellationToken)).Count == 0)
        {
            throw new InvalidOperationException($"Waldur organization {provider} is not a service provider (or the token cannot see it).");
        }

        var existing = await ListOfferingsAsync(provider, cancellationToken);
        var results = new List<RegisteredOffering>();
        foreach (var entry in entries)
        {
            var changes = new List<string>();
            var category = await EnsureCategoryAsync(entry.Category, dryRun, changes, cancellationToken);
            var offering = existing.FirstOrDefault(o => o.Backend_id == entry.Slug);
            Guid? uuid = offering?.Uuid;
            if (offering is null)
            {
                changes.Add("create offering");
                if (!dryRun)
                {
                    var created = await waldur.CreateProviderOfferingAsync(CreateRequest(entry, provider, category!), cancellationToken);
                    uuid = created.Uuid;
                    offering = await waldur.GetProviderOfferingAsync(created.Uuid!.Value, cancellationToken);
                }
            }
            else
            {
                await UpdateAsync(entry, offering, category, dryRun, changes, cancellationToken);
            }

            if (offering is not null)
            {
                await EnsurePlanAsync(entry, offering, dryRun, changes, cancellationToken);
                if (WaldurEnums.ToWire(offering.State) != "Active")
                {
                    changes.Add("activate");
                    if (!dryRun)
                    {
                        await waldur.ActivateProviderOfferingAsync(offering.Uuid!.Value, cancellationToken);
                    }
                }
            }

            // The try page's shared demo flow (with Langflow configured), under the dedicated demo user.
            var (demoChanges, demoFlowId) = await demoFlows.PublishAsync(entry, dryRun, cancellationToken);
            changes.AddRange(demoChanges);

            logger.LogInformation("Offering {Slug}: {Changes}", entry.Slug, changes.Count == 0 ? "unchanged" : string.Join(", ", changes));
            results.Add(new RegisteredOffering(entry.Slug, uuid, changes) { TryUrl = TryUrl(entry), DemoFlowId = demoFlowId });
        }

        return results;
    }

    private async Task<List<ProviderOfferingDetails>> ListOfferingsAsync(Guid provider, CancellationToken cancellationToken) =>
        await WaldurPages.ReadAllAsync(
                (page, size, token) => waldur.ListProviderOfferingsAsync(provider, page, size, token), waldurOptions.Value.PageSize, cancellationToken)
            .ToListAsync(cancellationToken);

    private async Task<MarketplaceCategory?> EnsureCategoryAsync(OfferingCategory category, bool dryRun, List<string> changes, CancellationToken cancellationToken)
    {
        var title = category.ToString();
        // Waldur's title filter matches titles containing it ("Agents" finds "Voice Agents" too), and the exact one may be
        // on any page: every page is read, or a title on a later page would be created again.
        var found = await WaldurPages.ReadAllAsync(
                (page, size, token) => waldur.ListCategoriesAsync(title, page, size, token), waldurOptions.Value.PageSize, cancellationToken)
            .FirstOrDefaultAsync(c => c.Title == title, cancellationToken);
        if (found is not null)
        {
            return found;
        }

        changes.Add($"create category {title}");
        return dryRun ? null : await waldur.CreateCategoryAsync(new MarketplaceCategoryRequest
        {
            Title = title,
            Description = $"AI {title.ToLowerInvariant()} from the agent marketplace.",
        }, cancellationToken);
    }

    private async Task UpdateAsync(CatalogueEntry entry, ProviderOfferingDetails offering, MarketplaceCategory? category, bool dryRun, List<string> changes, CancellationToken cancellationToken)
    {
        var uuid = offering.Uuid!.Value;
        var overview = Overview(entry);
        if (offering.Name != overview.Name || offering.Description != overview.Description || offering.Full_description != overview.Full_description)
        {
            changes.Add("update name and description");
            if (!dryRun)
            {
                await waldur.UpdateOfferingOverviewAsync(uuid, overview, cancellationToken);
            }
        }

        if (category is null || offering.Category_uuid != category.Uuid)
        {
            changes.Add("move to category " + entry.Category);
            if (!dryRun && category?.Url is { } url)
            {
                await waldur.UpdateOfferingCategoryAsync(uuid, new OfferingDescriptionUpdateRequest { Category = url }, cancellationToken);
            }
        }

        if (!SameForm(offering.Options, OrderForm(entry.Options)))
        {
            changes.Add("update order form");
            if (!dryRun)
            {
                await waldur.UpdateOfferingOptionsAsync(uuid, new OfferingOptionsUpdateRequest { Options = OrderForm(entry.Options) }, cancellationToken);
            }
        }

        var editable = OrderForm(entry.Options.Where(o => entry.ResourceOptions.Contains(o.Key)));
        if (!SameForm(offering.Resource_options, editable))
        {
            changes.Add("update editable options");
            if (!dryRun)
            {
                await waldur.UpdateOfferingResourceOptionsAsync(uuid, new OfferingResourceOptionsUpdateRequest { Resource_options = editable }, cancellationToken);
            }
        }

        if (offering.Plugin_options?.Create_orders_on_resource_option_change != true || offering.Plugin_options?.Supports_pausing != true)
        {
            changes.Add("update integration options");
            if (!dryRun)
            {
                await waldur.UpdateOfferingIntegrationAsync(uuid, new OfferingIntegrationUpdateRequest { Plugin_options = PluginOptions(), Backend_id = entry.Slug }, cancellationToken);
            }
        }

        foreach (var component in entry.Components)
        {
            var current = offering.Components?.FirstOrDefault(c => c.Type == component.Type);
            if (current is null)
            {
                changes.Add($"add component {component.Type}");
                if (!dryRun)
                {
                    await waldur.CreateOfferingComponentAsync(uuid, Component(component), cancellationToken);
                }
            }
            else if (current.Name != component.Name || (current.Description ?? string.Empty) != component.Description
                || current.Measured_unit != component.MeasuredUnit || WaldurEnums.ToWire(current.Billing_type) != "usage")
            {
                changes.Add($"update component {component.Type}");
                if (!dryRun)
                {
                    await waldur.UpdateOfferingComponentAsync(uuid, new UpdateOfferingComponentRequest
                    {
                        Uuid = current.Uuid!.Value,
                        Billing_type = BillingTypeEnum.Usage,
                        Type = component.Type,
                        Name = component.Name,
                        Description = component.Description,
                        Measured_unit = component.MeasuredUnit,
                    }, cancellationToken);
                }
            }
        }
    }

    private async Task EnsurePlanAsync(CatalogueEntry entry, ProviderOfferingDetails offering, bool dryRun, List<string> changes, CancellationToken cancellationToken)
    {
        // Every page: a plan past the first would otherwise be created again.
        var plan = await WaldurPages.ReadAllAsync(
                (page, size, token) => waldur.ListPlansAsync(offering.Uuid!.Value, page, size, token), waldurOptions.Value.PageSize, cancellationToken)
            .FirstOrDefaultAsync(p => p.Name == entry.Plan.Name, cancellationToken);
        if (plan is null)
        {
            changes.Add($"create plan {entry.Plan.Name}");
            if (dryRun)
            {
                return;
            }

            plan = await waldur.CreatePlanAsync(new ProviderPlanDetailsRequest
            {
                Name = entry.Plan.Name,
                Description = entry.Plan.Description,
                Unit = BillingUnit.Month,
                Offering = offering.Url!,
            }, cancellationToken);
        }

        var stale = entry.Plan.Prices.Any(p => !plan.Prices.TryGetValue(p.Key, out var current) || (decimal)current != p.Value);
        if (stale)
        {
            changes.Add("update prices");
            if (!dryRun)
            {
                await waldur.UpdatePlanPricesAsync(plan.Uuid, new PricesUpdateRequest
                {
                    Prices = entry.Plan.Prices.ToDictionary(p => p.Key, p => p.Value.ToString("0.00########", CultureInfo.InvariantCulture)),
                }, cancellationToken);
            }
        }
    }

    private OfferingCreateRequest CreateRequest(CatalogueEntry entry, Guid provider, MarketplaceCategory category)
    {
        var overview = Overview(entry);
        return new OfferingCreateRequest
        {
            Name = overview.Name,
            Description = overview.Description,
            Full_description = overview.Full_description,
            Customer = new Uri(waldurOptions.Value.BaseUrl!, $"api/customers/{provider}/"),
            Category = category.Url!,
            Type = OfferingType,
            Backend_id = entry.Slug,
            Options = OrderForm(entry.Options),
            Resource_options = OrderForm(entry.Options.Where(o => entry.ResourceOptions.Contains(o.Key))),
            Components = entry.Components.Select(Component).ToList(),
            Plugin_options = PluginOptions(),
            Shared = true,
            Billable = true,
        };
    }

    private OfferingOverviewUpdateRequest Overview(CatalogueEntry entry)
    {
        var tryUrl = TryUrl(entry);
        var prices = string.Join(", ", entry.Pricing.Credits.Select(p => $"{p.Value} credits per {ActionClasses.Key(p.Key).Replace('_', ' ')}"));
        return new OfferingOverviewUpdateRequest
        {
            Name = entry.Name,
            Description = entry.Description,
            Full_description = $"<p>{System.Net.WebUtility.HtmlEncode(entry.Description)}</p><p>Pricing: {prices}.</p>"
                + $"<p><a href=\"{tryUrl}\">Try it now</a>: five free messages, no subscription needed.</p>",
        };
    }

    private Uri TryUrl(CatalogueEntry entry) => new(web.Value.PublicBaseUrl, $"try/{entry.Slug}");

    private static MergedPluginOptionsRequest PluginOptions() => new()
    {
        // Buyers' option changes become Update orders, which the adapter applies.
        Create_orders_on_resource_option_change = true,
        Supports_pausing = true,
        Supports_downscaling = true,
        Can_restore_resource = true,
    };

    private static OfferingComponentRequest Component(UsageComponent component) => new()
    {
        Billing_type = BillingTypeEnum.Usage,
        Type = component.Type,
        Name = component.Name,
        Description = component.Description,
        Measured_unit = component.MeasuredUnit,
    };

    internal static OfferingOptionsRequest OrderForm(IEnumerable<FormField> fields)
    {
        var list = fields.ToList();
        return new OfferingOptionsRequest
        {
            Order = list.Select(f => f.Key).ToList(),
            Options = list.ToDictionary(f => f.Key, f => new OptionFieldRequest
            {
                Type = WaldurEnums.FromWire<OptionFieldTypeEnum>(FormFieldTypes.ToWaldur(f.Type)),
                Label = f.Label,
                Help_text = f.HelpText,
                Required = f.Required,
                Choices = f.Choices,
                Default = f.Default,
                Min = (int?)f.Min,
                Max = (int?)f.Max,
            }),
        };
    }

    private static bool SameForm(OfferingOptions? current, OfferingOptionsRequest desired)
    {
        if (current?.Options is null)
        {
            return desired.Options.Count == 0;
        }

        if (!(current.Order ?? []).SequenceEqual(desired.Order) || current.Options.Count != desired.Options.Count)
        {
            return false;
        }

        foreach (var (key, want) in desired.Options)
        {
            if (!current.Options.TryGetValue(key, out var have)
                || have.Type != want.Type || have.Label != want.Label || (have.Help_text ?? null) != want.Help_text
                || (have.Required ?? false) != (want.Required ?? false) || !(have.Choices ?? []).SequenceEqual(want.Choices ?? [])
                || have.Default != want.Default || have.Min != want.Min || have.Max != want.Max)
            {
                return false;
            }
        }

        return true;
    }
}
