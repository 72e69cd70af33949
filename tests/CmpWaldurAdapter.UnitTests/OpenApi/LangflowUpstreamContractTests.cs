using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>
/// The checker on the real pinned Langflow spec (OpenAPI 3.1, FastAPI style: anyOf-with-null
/// everywhere, api-key auth in header or query), ahead of the trimmed langflow.json.
/// </summary>
public sealed class LangflowUpstreamContractTests
{
    private const string FlowId = "3f0a1b2c-4d5e-4f60-8a7b-9c0d1e2f3a4b";

    private static OpenApiContract Langflow => UpstreamSpecs.LangflowUpstream.WithAuthEnforced();

    [Fact]
    public void Run_flow_with_api_key_header_passes()
    {
        var violations = Langflow.Validate(RunFlow("""{"input_value":"hi","input_type":"chat","output_type":"chat","tweaks":null,"session_id":null}"""));

        Assert.True(violations.Count == 0, string.Join(Environment.NewLine, violations));
    }

    [Fact]
    public void Run_flow_with_unknown_output_type_is_reported()
    {
        var violation = Assert.Single(Langflow.Validate(RunFlow("""{"input_value":"hi","output_type":"voice"}""")));

        Assert.Equal((ContractViolationKind.BodySchema, "body.output_type"), (violation.Kind, violation.Location));
        // The body is anyOf [SimplifiedAPIRequest, null]: the object branch's own error is reported.
        Assert.Equal("string 'voice' is not one of [chat, text, any, debug]", violation.Message);
    }

    [Fact]
    public void Run_flow_without_api_key_is_reported_when_auth_is_enforced()
    {
        var violation = Assert.Single(Langflow.Validate(RunFlow("{}") with { Headers = HttpRequestRecord.HeadersOf() }));

        Assert.Equal(ContractViolationKind.MissingAuthentication, violation.Kind);
        Assert.Empty(Langflow.Validate(RunFlow("{}", "?stream=false&x-api-key=k") with { Headers = HttpRequestRecord.HeadersOf() }));
    }

    [Fact]
    public void Query_bounds_and_nullable_uuid_filters_are_checked()
    {
        var headers = HttpRequestRecord.HeadersOf(("x-api-key", "k"));

        Assert.Empty(Langflow.Validate(new HttpRequestRecord("GET", $"/api/v1/flows/?folder_id={FlowId}&size=100&get_all=false") { Headers = headers }));
        var violations = Langflow.Validate(new HttpRequestRecord("GET", "/api/v1/flows/?folder_id=inbox&size=101") { Headers = headers });
        Assert.Collection(
            violations.OrderBy(v => v.Location, StringComparer.Ordinal),
            v => Assert.Equal(("query.folder_id", "query parameter 'folder_id': 'inbox' is not a valid uuid"), (v.Location, v.Message)),
            v => Assert.Equal(("query.size", "query parameter 'size': 101 is above the maximum 100"), (v.Location, v.Message)));
    }

    private static HttpRequestRecord RunFlow(string body, string query = "?stream=false") =>
        new("POST", $"/api/v1/run/{FlowId}{query}")
        {
            Body = body,
            ContentType = "application/json",
            Headers = HttpRequestRecord.HeadersOf(("x-api-key", "k")),
        };
}
