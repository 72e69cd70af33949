using System.Net;
using System.Text.RegularExpressions;

namespace CmpWaldurAdapter.Testing.Api;

/// <summary>
/// A one-time key link opened as a buyer opens it: its page (which uses nothing up), then the page's button (a form
/// POST carrying the page's anti-forgery token and cookie).
/// </summary>
public static partial class KeyRevealLinks
{
    /// <summary>Opens the link and presses the page's button; the answer to the button (the key's page, or why not).</summary>
    /// <param name="link">The link as handed out (absolute).</param>
    /// <param name="server">Where the adapter listens, when that is not the link's own address (the link's path is kept).</param>
    public static async Task<HttpResponseMessage> PressAsync(string link, Uri? server = null)
    {
        var address = new Uri(link);
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false })
        {
            BaseAddress = server ?? new Uri(address.GetLeftPart(UriPartial.Authority)),
        };
        var page = await browser.GetAsync(address.PathAndQuery);
        page.EnsureSuccessStatusCode();
        using var form = new FormUrlEncodedContent([FormFieldOf(await page.Content.ReadAsStringAsync())]);
        var answer = await browser.PostAsync(address.PathAndQuery, form);
        await answer.Content.LoadIntoBufferAsync();
        return answer;
    }

    /// <summary>The page that shows the key (<see cref="PressAsync"/>, which must succeed).</summary>
    public static async Task<string> ShowAsync(string link, Uri? server = null)
    {
        using var answer = await PressAsync(link, server);
        answer.EnsureSuccessStatusCode();
        return await answer.Content.ReadAsStringAsync();
    }

    /// <summary>The hidden field (the anti-forgery token) of the link page's form.</summary>
    public static KeyValuePair<string, string> FormFieldOf(string page)
    {
        var field = FormField().Match(page);
        return field.Success
            ? new(WebUtility.HtmlDecode(field.Groups["name"].Value), WebUtility.HtmlDecode(field.Groups["value"].Value))
            : throw new InvalidOperationException("The key link's page has no form to show the key.");
    }

    [GeneratedRegex("""<input type="hidden" name="(?<name>[^"]+)" value="(?<value>[^"]*)">""")]
    private static partial Regex FormField();
}
