using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Offerings;

namespace CmpWaldurAdapter.Credits;

/// <summary>What one action costs on one offering, and the price-book version that says so.</summary>
public sealed record ActionPrice(ActionClass Action, long Credits, int PriceBookVersion)
{
    public string Component => ActionClasses.Component(Action);
}

/// <summary>
/// The price book of each served offering, from its catalogue entry (configuration <c>Offerings[].Slug</c>).
/// Try mode and subscribing are free: they never reach the ledger.
/// </summary>
public sealed class PriceBooks(ServedOfferings offerings, IServiceProvider services)
{
    // Resolved on first use: commands and hosts that never price anything need no catalogue folder.
    private readonly Lazy<OfferingCatalogue> _catalogue = new(services.GetRequiredService<OfferingCatalogue>);

    /// <summary>The catalogue entry of a served offering, or null when the offering is not served or not in the catalogue.</summary>
    public CatalogueEntry? EntryFor(Guid offeringUuid) =>
        offerings.Find(offeringUuid) is { } binding ? _catalogue.Value.Find(binding.Slug) : null;

    public PriceBook? For(Guid offeringUuid) => EntryFor(offeringUuid)?.Pricing;

    /// <summary>The price of <paramref name="action"/> on the offering; throws when the offering does not sell it.</summary>
    public ActionPrice Quote(Guid offeringUuid, ActionClass action)
    {
        var book = For(offeringUuid) ?? throw new InvalidOperationException($"Offering {offeringUuid} has no price book: it is not served or not in the catalogue.");
        return new ActionPrice(action, book.PriceOf(action), book.Version);
    }

    /// <summary>The Waldur usage components of the offering (one per priced action class), empty when unknown.</summary>
    public IReadOnlyList<string> ComponentsOf(Guid offeringUuid) =>
        EntryFor(offeringUuid)?.Components.Select(c => c.Type).ToList() ?? [];
}
