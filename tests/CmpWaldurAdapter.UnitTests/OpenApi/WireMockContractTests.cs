using System.Net.Http.Json;
using System.Text;
using CmpWaldurAdapter.Testing.Contracts;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>The WireMock glue: a fake's logged traffic is checked request by request.</summary>
public sealed class WireMockContractTests : IDisposable
{
    private const string Id = "7d1c5e4a-2b3f-4c8d-9e0f-1a2b3c4d5e6f";

    private readonly WireMockServer _server = WireMockServer.Start();
    private readonly HttpClient _http;

    public WireMockContractTests()
    {
        _server.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBodyAsJson(new { }));
        _http = new HttpClient { BaseAddress = new Uri(_server.Url!) };
    }

    public void Dispose()
    {
        _http.Dispose();
        _server.Stop();
        _server.Dispose();
    }

    [Fact]
    public async Task Good_traffic_passes_and_ignored_prefixes_are_skipped()
    {
        await SendGoodTraffic();
        await _http.GetAsync("/health/live");

        Assert.Equal(3, _server.AssertRequestsConform(UpstreamSpecs.Waldur, "/health"));
        Assert.Empty(_server.FindContractViolations(UpstreamSpecs.Waldur, "/health"));
    }

    [Fact]
    public async Task Bad_traffic_throws_naming_each_offending_request()
    {
        await SendGoodTraffic();
        await _http.PostAsJsonAsync("/api/marketplace-component-usages/set_usage/", new { resource = Id });
        await _http.GetAsync("/api/marketplace-orders/?state=bogus");

        var ex = Assert.Throws<ContractViolationException>(() => _server.AssertRequestsConform(UpstreamSpecs.Waldur));

        Assert.Equal(2, ex.Requests.Count);
        Assert.StartsWith("2 of 5 requests do not conform to waldur.yaml:", ex.Message);
        Assert.Contains("POST /api/marketplace-component-usages/set_usage/", ex.Message);
        Assert.Contains("required property 'usages' is missing", ex.Message);
        Assert.Contains("GET /api/marketplace-orders/?state=bogus", ex.Message);
        Assert.DoesNotContain("approve_by_provider", ex.Message);
    }

    [Fact]
    public async Task Paths_outside_the_spec_fail_unless_ignored()
    {
        await _http.GetAsync("/healthz");
        await _http.GetAsync("/health");

        var violations = _server.FindContractViolations(UpstreamSpecs.Waldur, "/health");

        var only = Assert.Single(violations);
        Assert.Equal("/healthz", only.Request.Path);
        Assert.Equal(ContractViolationKind.UnknownPath, Assert.Single(only.Violations).Kind);
    }

    [Fact]
    public async Task Recorded_requests_keep_method_query_headers_and_body()
    {
        using var content = new StringContent("""{"report":[]}""", Encoding.UTF8, "application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/api/marketplace-provider-resources/{Id}/submit_report/?x=a%26b") { Content = content };
        request.Headers.TryAddWithoutValidation("Authorization", "Token secret");
        await _http.SendAsync(request);

        var record = Assert.Single(_server.LogEntries).RequestMessage.ToHttpRequestRecord();

        Assert.Equal("POST", record.Method);
        Assert.Equal($"/api/marketplace-provider-resources/{Id}/submit_report/?x=a%26b", record.Url);
        Assert.Equal($"/api/marketplace-provider-resources/{Id}/submit_report/", record.Path);
        Assert.Equal("x=a%26b", record.Query);
        Assert.Equal("Token secret", record.GetHeader("authorization"));
        Assert.StartsWith("application/json", record.EffectiveContentType, StringComparison.Ordinal);
        Assert.Equal("""{"report":[]}""", record.Body);
        Assert.Empty(UpstreamSpecs.Waldur.WithAuthEnforced().Validate(record with { Url = record.Path }));
    }

    private async Task SendGoodTraffic()
    {
        await _http.GetAsync($"/api/marketplace-orders/?offering_uuid={Id}&state=pending-provider&state=executing");
        await _http.PostAsJsonAsync($"/api/marketplace-orders/{Id}/approve_by_provider/", new { });
        await _http.PostAsJsonAsync("/api/marketplace-component-usages/set_usage/", new { resource = Id, usages = new[] { new { type = "cpu", amount = "1.5" } } });
    }
}
