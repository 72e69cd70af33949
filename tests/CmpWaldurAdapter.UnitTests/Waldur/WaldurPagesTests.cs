using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Refit;

namespace CmpWaldurAdapter.UnitTests.Waldur;

/// <summary>
/// Waldur's lists are DRF page-number pages: a page past the last is 404 "Invalid page.", so a list whose items fill
/// their last page exactly must be read without asking for the next one. The emulator answers as Waldur does, and
/// <see cref="WaldurPages"/> stops on the last page by the short page, <c>X-Result-Count</c> or the <c>Link</c> header.
/// </summary>
public sealed class WaldurPagesTests
{
    private const int PageSize = 2;
    private static readonly string[] ActionableStates = ["pending-provider", "executing"];
    private static readonly Uri BaseAddress = new("https://waldur.example.org/");

    [Fact]
    public async Task The_emulator_answers_a_page_past_the_last_with_404_invalid_page_as_waldur_does()
    {
        using var waldur = new WaldurFake();
        var offering = waldur.AddOffering("Agents");
        var empty = waldur.AddOffering("Nothing ordered");
        for (var i = 0; i < 4; i++)
        {
            waldur.PlaceCreateOrder(offering);
        }

        using var http = new HttpClient { BaseAddress = waldur.Upstream.Url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Token", WaldurEmulator.Token);
        string Orders(Guid of, string page) => $"api/marketplace-orders/?offering_uuid={of}&page_size={PageSize}{page}";

        using var first = await http.GetAsync(Orders(offering, ""));
        using var last = await http.GetAsync(Orders(offering, "&page=2"));
        using var past = await http.GetAsync(Orders(offering, "&page=3"));
        using var emptyFirst = await http.GetAsync(Orders(empty, "&page=1"));
        using var emptySecond = await http.GetAsync(Orders(empty, "&page=2"));

        Assert.Equal((HttpStatusCode.OK, 2), (first.StatusCode, await CountAsync(first)));
        Assert.Equal("4", Header(first, "X-Result-Count"));
        Assert.Contains($"page=2>; rel=\"next\"", Header(first, "Link"), StringComparison.Ordinal);
        Assert.Equal((HttpStatusCode.OK, 2), (last.StatusCode, await CountAsync(last)));
        Assert.DoesNotContain("rel=\"next\"", Header(last, "Link"), StringComparison.Ordinal);
        Assert.Contains("rel=\"prev\"", Header(last, "Link"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, past.StatusCode);
        Assert.Equal("Invalid page.", JsonNode.Parse(await past.Content.ReadAsStringAsync())!["detail"]!.GetValue<string>());
        // An empty list still has its first page.
        Assert.Equal((HttpStatusCode.OK, 0, "0"), (emptyFirst.StatusCode, await CountAsync(emptyFirst), Header(emptyFirst, "X-Result-Count")));
        Assert.Equal(HttpStatusCode.NotFound, emptySecond.StatusCode);
    }

    [Fact]
    public async Task A_list_filling_its_last_page_is_read_whole_without_asking_past_the_end()
    {
        using var waldur = new WaldurFake();
        var offering = waldur.AddOffering("Agents");
        var placed = Enumerable.Range(0, 2 * PageSize).Select(_ => waldur.PlaceCreateOrder(offering)).ToList();
        using var services = ClientFor(waldur);
        var api = services.GetRequiredService<IWaldurApi>();

        var read = await WaldurPages.ReadAllAsync(
            (page, size, token) => api.ListOrdersAsync(offering, ActionableStates, page, size, token), PageSize, CancellationToken.None).ToListAsync();

        Assert.Equal(placed, read.Select(o => o.Uuid!.Value));
        // Two pages, and no third one that Waldur would answer 404.
        Assert.Equal(2, waldur.Count("GET", "/api/marketplace-orders/"));
    }

    [Fact]
    public async Task Without_paging_headers_a_full_page_asks_for_the_next_and_a_404_there_ends_the_list()
    {
        var server = new PagesHandler(page => page == 1 ? Page(PageSize) : Answer(HttpStatusCode.NotFound, """{"detail":"Invalid page."}"""));

        var read = await ReadOrdersAsync(server);

        Assert.Equal(PageSize, read.Count);
        Assert.Equal([1, 2], server.PagesAsked);
    }

    [Fact]
    public async Task The_result_count_ends_the_list_on_a_full_last_page_without_links()
    {
        var server = new PagesHandler(page => Page(PageSize, resultCount: 2 * PageSize));

        var read = await ReadOrdersAsync(server);

        Assert.Equal(2 * PageSize, read.Count);
        Assert.Equal([1, 2], server.PagesAsked);
    }

    [Fact]
    public async Task A_link_header_without_a_next_page_ends_the_list_without_a_count()
    {
        var server = new PagesHandler(page => Page(PageSize, link: page == 1
            ? "<https://waldur.example.org/api/marketplace-orders/>; rel=\"first\", <https://waldur.example.org/api/marketplace-orders/?page=2>; rel=\"next\""
            : "<https://waldur.example.org/api/marketplace-orders/>; rel=\"first\", <https://waldur.example.org/api/marketplace-orders/>; rel=\"prev\""));

        var read = await ReadOrdersAsync(server);

        Assert.Equal(2 * PageSize, read.Count);
        Assert.Equal([1, 2], server.PagesAsked);
    }

    [Fact]
    public async Task A_missing_first_page_is_the_error_it_is()
    {
        var server = new PagesHandler(_ => Answer(HttpStatusCode.NotFound, """{"detail":"Not found."}"""));

        var failure = await Assert.ThrowsAsync<ApiException>(() => ReadOrdersAsync(server));

        Assert.Equal(HttpStatusCode.NotFound, failure.StatusCode);
    }

    [Fact]
    public async Task A_later_page_failing_otherwise_fails_the_read()
    {
        var server = new PagesHandler(page => page == 1 ? Page(PageSize) : Answer(HttpStatusCode.ServiceUnavailable, """{"detail":"down"}"""));

        var failure = await Assert.ThrowsAsync<ApiException>(() => ReadOrdersAsync(server));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failure.StatusCode);
    }

    private static Task<List<OrderDetails>> ReadOrdersAsync(PagesHandler server)
    {
        var api = RestService.For<IWaldurApi>(new HttpClient(server) { BaseAddress = BaseAddress });
        return WaldurPages.ReadAllAsync(
            (page, size, token) => api.ListOrdersAsync(Guid.NewGuid(), ActionableStates, page, size, token), PageSize, CancellationToken.None).ToListAsync().AsTask();
    }

    /// <summary>The adapter's own Waldur client (token, resilience) over the fake.</summary>
    private static Microsoft.Extensions.DependencyInjection.ServiceProvider ClientFor(WaldurFake waldur)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = waldur.Upstream.Url.ToString(),
            ["Waldur:Token"] = WaldurEmulator.Token,
        }).Build();
        return new ServiceCollection().AddLogging().AddWaldurClient(configuration).BuildServiceProvider();
    }

    private static HttpResponseMessage Page(int items, long? resultCount = null, string? link = null)
    {
        var body = new JsonArray(Enumerable.Range(0, items).Select(_ => (JsonNode)new JsonObject { ["uuid"] = Guid.NewGuid().ToString() }).ToArray());
        var response = Answer(HttpStatusCode.OK, body.ToJsonString());
        if (resultCount is { } count)
        {
            response.Headers.Add("X-Result-Count", count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (link is not null)
        {
            response.Headers.TryAddWithoutValidation("Link", link);
        }

        return response;
    }

    private static HttpResponseMessage Answer(HttpStatusCode status, string json) =>
        new(status) { Content = new StringContent(json, Encoding.UTF8, "application/json") };

    private static async Task<int> CountAsync(HttpResponseMessage response) => JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsArray().Count;

    private static string Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? string.Join(", ", values) : string.Empty;

    /// <summary>A Waldur whose pages the test writes; records which page numbers were asked for.</summary>
    private sealed class PagesHandler(Func<int, HttpResponseMessage> answer) : HttpMessageHandler
    {
        public List<int> PagesAsked { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var query = System.Web.HttpUtility.ParseQueryString(request.RequestUri!.Query);
            var page = int.Parse(query["page"] ?? "1", System.Globalization.CultureInfo.InvariantCulture);
            PagesAsked.Add(page);
            var response = answer(page);
            response.RequestMessage = request;
            return Task.FromResult(response);
        }
    }
}
