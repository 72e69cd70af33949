namespace CmpWaldurAdapter.Web;

/// <summary>How buyers reach the adapter's pages and API (configuration section <c>Web</c>).</summary>
public sealed class WebOptions
{
    public const string SectionName = "Web";

    /// <summary>The adapter's public address, used in links it hands out (try pages, console, API endpoint).</summary>
    public Uri PublicBaseUrl { get; set; } = new("http://localhost:5000/");

    /// <summary>Waldur HomePort's address, for "Subscribe" links to an offering's order page.</summary>
    public Uri? HomePortUrl { get; set; }
}
