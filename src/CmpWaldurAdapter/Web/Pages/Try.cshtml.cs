using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Offerings;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web.Pages;

/// <summary>The try page: a demo chat on the offering's shared demo flow, limited per visitor by the server.</summary>
public sealed class TryModel(OfferingCatalogue catalogue, ServedOfferings offerings, SignedTokens tokens, TryLimiter limiter, IOptions<WebOptions> options) : PageModel
{
    public CatalogueEntry Offering { get; private set; } = null!;

    public int Remaining { get; private set; }

    public long CreditsPerMessage { get; private set; }

    public string SubscribeUrl { get; private set; } = "#";

    public async Task<IActionResult> OnGetAsync(string offering, CancellationToken cancellationToken)
    {
        if (BuyerWebEndpoints.TryOffering(offering, catalogue, offerings) is not { } found)
        {
            return NotFound();
        }

        var (entry, binding) = found;

        Offering = entry;
        CreditsPerMessage = entry.Pricing.Offers(ActionClass.ChatMessage) ? entry.Pricing.PriceOf(ActionClass.ChatMessage) : 0;
        SubscribeUrl = options.Value.HomePortOfferingUrl(binding.Uuid).ToString();
        var visitor = BuyerWebEndpoints.TryVisitor(HttpContext, tokens);
        Remaining = await limiter.RemainingAsync(entry.Slug, visitor, ClientAddress.Of(HttpContext), ClientAddress.SiteOf(HttpContext), cancellationToken);
        return Page();
    }
}
