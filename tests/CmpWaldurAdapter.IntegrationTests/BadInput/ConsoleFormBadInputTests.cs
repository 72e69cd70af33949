using System.Net;
using System.Text.RegularExpressions;
using CmpWaldurAdapter.Testing.Web;
using CmpWaldurAdapter.Web;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.BadInput;

/// <summary>
/// The console's widget daily message cap (a form field, so not in <see cref="PublicEndpoints"/>): every bad value
/// gets a 400 that says what is accepted, and nothing is saved.
/// </summary>
public sealed partial class ConsoleFormBadInputTests(ConsoleFormBadInputTests.Console console) : IClassFixture<ConsoleFormBadInputTests.Console>
{
    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("+5")]
    [InlineData("1.5")]
    [InlineData("1e3")]
    [InlineData("0x10")]
    [InlineData("12abc")]
    [InlineData("1 000")]
    [InlineData("1000001")]
    [InlineData("99999999999999999999999")]
    [InlineData("٣")] // a digit, but not an ASCII one
    [InlineData("' OR '1'='1'; DROP TABLE buyer_web_settings;-- <script>alert(1)</script>")]
    public async Task A_bad_daily_cap_gets_a_400_with_a_clear_message_and_saves_nothing(string cap)
    {
        var before = await console.CapOf50Async();

        var response = await console.Browser.PostAsync("/console?handler=WidgetCap", console.Form(cap));
        var page = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("id=\"widget_cap_error\">The daily message cap must be a whole number from 1 to 1000000, or empty for no cap.", page);
        Assert.DoesNotContain("<script>alert(1)", page);
        Assert.Equal(before, await console.StoredAsync());
    }

    [Fact]
    public async Task A_very_long_daily_cap_is_refused_and_saves_nothing()
    {
        var before = await console.CapOf50Async();

        var response = await console.Browser.PostAsync("/console?handler=WidgetCap", console.Form(new string('9', 100_000)));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(before, await console.StoredAsync());
    }

    [Fact]
    public async Task Without_the_anti_forgery_token_a_valid_cap_saves_nothing()
    {
        var before = await console.CapOf50Async();

        var response = await console.Browser.PostAsync("/console?handler=WidgetCap", new FormUrlEncodedContent([new("cap", "7")]));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(before, await console.StoredAsync());
    }

    [Fact]
    public async Task The_well_formed_cap_is_saved()
    {
        // The baseline: bad values are refused for what they are.
        Assert.Equal(HttpStatusCode.OK, (await console.Browser.PostAsync("/console?handler=WidgetCap", console.Form(" 250 "))).StatusCode);
        Assert.StartsWith("250|", await console.StoredAsync());
    }

    /// <summary>A running adapter and an open console of one subscription.</summary>
    public sealed partial class Console : IAsyncLifetime
    {
        private BuyerWebTestBed _bed = null!;
        private string _antiforgery = string.Empty;
        private Guid _subscription;

        public HttpClient Browser { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            _bed = await BuyerWebTestBed.CreateAsync();
            await _bed.StartAsync();
            _subscription = (await _bed.AddSubscriptionAsync()).Id;
            Browser = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = _bed.Url };
            Assert.Equal(HttpStatusCode.Redirect, (await Browser.GetAsync((await _bed.ConsoleLinkAsync(_subscription)).PathAndQuery)).StatusCode);
            _antiforgery = AntiforgeryField().Match(await Browser.GetStringAsync("/console?tab=widget")).Groups[1].Value;
            Assert.NotEmpty(_antiforgery);
        }

        public async Task DisposeAsync()
        {
            Browser.Dispose();
            await _bed.DisposeAsync();
        }

        public FormUrlEncodedContent Form(string cap) => new([new("__RequestVerificationToken", _antiforgery), new("cap", cap)]);

        /// <summary>The stored cap and when the settings last changed (to the tick).</summary>
        public async Task<string> StoredAsync()
        {
            var stored = await _bed.Services.GetRequiredService<BuyerWebStore>().GetAsync(_subscription, CancellationToken.None);
            return $"{stored.WidgetDailyMessageCap}|{stored.UpdatedAt.UtcTicks}";
        }

        /// <summary>Sets the cap to 50 (another case may have saved one) and returns what is stored.</summary>
        public async Task<string> CapOf50Async()
        {
            await _bed.Services.GetRequiredService<BuyerWebStore>().UpdateAsync(_subscription, s => s.WidgetDailyMessageCap = 50, CancellationToken.None);
            return await StoredAsync();
        }

        [GeneratedRegex("name=\"__RequestVerificationToken\" type=\"hidden\" value=\"([^\"]+)\"")]
        private static partial Regex AntiforgeryField();
    }
}
