using CmpWaldurAdapter.Core.Forms;

namespace CmpWaldurAdapter.Core.Catalogue;

/// <summary>Marketplace categories, as HomePort groups the offerings.</summary>
public enum OfferingCategory
{
    Agents,
    Apps,
    Assistants,
    Automations,
}

/// <summary>What an offering's agent can do beyond plain chat; an endpoint of a capability the offering lacks answers 404.</summary>
public enum Capability
{
    Chat,
    KnowledgeBase,
    Widget,
    ImageGeneration,
    Voice,
    Automation,
}

/// <summary>A Waldur usage component of the offering (billing type usage, measured in credits).</summary>
public sealed record UsageComponent(string Type, string Name, string MeasuredUnit, string Description);

/// <summary>The plan buyers pick in HomePort: the money price of one credit per component.</summary>
public sealed record PlanDefinition(string Name, string Description, IReadOnlyDictionary<string, decimal> Prices);

/// <summary>One offering of the marketplace, as the catalogue (one YAML file per offering) describes it.</summary>
public sealed record CatalogueEntry
{
    public required string Slug { get; init; }

    public required string Name { get; init; }

    public required OfferingCategory Category { get; init; }

    public required string Description { get; init; }

    public required PriceBook Pricing { get; init; }

    public required IReadOnlyList<Capability> Capabilities { get; init; }

    /// <summary>Path of the Langflow flow template each subscription's flow is cloned from (relative to the catalogue).</summary>
    public required string FlowTemplate { get; init; }

    /// <summary>Path of the shared demo flow the try page runs.</summary>
    public required string DemoFlow { get; init; }

    /// <summary>The order form HomePort renders (Waldur offering <c>options</c>).</summary>
    public required IReadOnlyList<FormField> Options { get; init; }

    /// <summary>Keys of <see cref="Options"/> buyers may change later (Waldur <c>resource_options</c>).</summary>
    public required IReadOnlyList<string> ResourceOptions { get; init; }

    public required IReadOnlyList<UsageComponent> Components { get; init; }

    public required PlanDefinition Plan { get; init; }

    /// <summary>The file the entry was read from, for messages.</summary>
    public string SourceFile { get; init; } = string.Empty;

    public bool Has(Capability capability) => Capabilities.Contains(capability);

    public OrderForm OrderForm => new(Options);

    public OrderForm ResourceOptionsForm => new(Options.Where(o => ResourceOptions.Contains(o.Key)));
}
