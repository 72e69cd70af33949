using System.Net;
using System.Text.RegularExpressions;
using Xunit;

namespace CmpWaldurAdapter.Testing.Web;

/// <summary>A browser-like client of the buyer console: keeps its session cookie, does not follow redirects.</summary>
public static partial class ConsoleBrowser
{
    /// <summary>A client whose console session was opened from <paramref name="link"/> (the report's console link).</summary>
    public static async Task<HttpClient> OpenAsync(Uri baseAddress, Uri link)
    {
        var browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = baseAddress };
        Assert.Equal(HttpStatusCode.Redirect, (await browser.GetAsync(link.PathAndQuery)).StatusCode);
        return browser;
    }

    /// <summary>Readies <paramref name="browser"/> for the Run tab's chat calls: its anti-forgery token as the header the page's script sends.</summary>
    public static async Task UseRunTabAsync(HttpClient browser)
    {
        var token = RunTabAntiforgery().Match(await browser.GetStringAsync("/console?tab=run")).Groups[1].Value;
        Assert.NotEmpty(token);
        browser.DefaultRequestHeaders.Add("RequestVerificationToken", token);
    }

    /// <summary>The anti-forgery token of a console page's forms.</summary>
    public static string Antiforgery(string page)
    {
        var token = AntiforgeryField().Match(page).Groups[1].Value;
        Assert.NotEmpty(token);
        return token;
    }

    /// <summary>A console form: the anti-forgery token of <paramref name="page"/> and the given fields.</summary>
    public static FormUrlEncodedContent Form(string page, params (string Name, string Value)[] fields) =>
        new([new("__RequestVerificationToken", Antiforgery(page)), .. fields.Select(f => new KeyValuePair<string, string>(f.Name, f.Value))]);

    /// <summary>The console link in the body of a report's console section.</summary>
    public static Uri LinkIn(string sectionBody)
    {
        var link = ConsoleLink().Match(sectionBody);
        Assert.True(link.Success, "no console link in: " + sectionBody);
        return new Uri(link.Value);
    }

    [GeneratedRegex(@"https?://\S+/console/open\?t=\S+")]
    private static partial Regex ConsoleLink();

    [GeneratedRegex("data-antiforgery=\"([^\"]+)\"")]
    private static partial Regex RunTabAntiforgery();

    [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
    private static partial Regex AntiforgeryField();
}
