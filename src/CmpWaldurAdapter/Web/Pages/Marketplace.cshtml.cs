using CmpWaldurAdapter.Catalogue;
using CmpWaldurAdapter.Core.Catalogue;
using CmpWaldurAdapter.Observability;
using CmpWaldurAdapter.Offerings;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace CmpWaldurAdapter.Web.Pages;

/// <summary>The public catalogue: the offerings this adapter serves, by category, with search.</summary>
public sealed class MarketplaceModel(ServedOfferings offerings, OfferingCatalogue catalogue, AdapterMetrics metrics, IOptions<WebOptions> options) : PageModel
{
    public static readonly IReadOnlyList<(string Key, string Label)> Tabs =
        [("all", "All"), ("agents", "Agents"), ("apps", "Apps"), ("assistants", "Assistants"), ("automations", "Automations")];

    public sealed record Card(string Slug, string Name, string Category, string Description, long CreditsPerMessage, long Runs, string AddUrl);

    [BindProperty(SupportsGet = true, Name = "tab")]
    public string Tab { get; set; } = "all";

    [BindProperty(SupportsGet = true, Name = "q")]
    public string? Query { get; set; }

    public int TryMessages => options.Value.TryMessagesPerVisitor;

    public IReadOnlyList<Card> Cards { get; private set; } = [];

    public void OnGet()
    {
        if (Tabs.All(t => t.Key != Tab))
        {
            Tab = "all";
        }

        var query = Query?.Trim() ?? string.Empty;
        Cards = offerings.Offerings
            .Select(binding => (binding, entry: catalogue.Find(binding.Slug)))
            .Where(o => o.entry is not null)
            .Select(o => (o.binding, entry: o.entry!))
            .Where(o => Tab == "all" || o.entry.Category.ToString().Equals(Tab, StringComparison.OrdinalIgnoreCase))
            .Where(o => query.Length == 0 || o.entry.Name.Contains(query, StringComparison.OrdinalIgnoreCase) || o.entry.Description.Contains(query, StringComparison.OrdinalIgnoreCase))
            .Select(o => new Card(o.entry.Slug, o.entry.Name, o.entry.Category.ToString(), o.entry.Description,
                o.entry.Pricing.Offers(ActionClass.ChatMessage) ? o.entry.Pricing.PriceOf(ActionClass.ChatMessage) : 0,
                metrics.RunsOf(o.entry.Slug), options.Value.HomePortOfferingUrl(o.binding.Uuid).ToString()))
            .OrderBy(c => c.Name, StringComparer.Ordinal)
            .ToList();
    }

    public string TabLink(string tab) =>
        string.IsNullOrWhiteSpace(Query) ? $"/marketplace?tab={tab}" : $"/marketplace?tab={tab}&q={Uri.EscapeDataString(Query)}";
}
