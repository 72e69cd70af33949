using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>The request checker against the real trimmed Waldur spec (OpenAPI 3.0.3).</summary>
public sealed class OpenApiContractTests
{
    private const string Id = "7d1c5e4a-2b3f-4c8d-9e0f-1a2b3c4d5e6f";
    private const string SetUsage = "/api/marketplace-component-usages/set_usage/";

    private static OpenApiContract Waldur => UpstreamSpecs.Waldur;

    [Theory]
    [InlineData($"/api/marketplace-orders/?offering_uuid={Id}&state=pending-provider&state=executing")]
    [InlineData("/api/marketplace-orders/")]
    [InlineData("/api/marketplace-orders/?page=2&page_size=50")] // $ref to #/components/parameters
    [InlineData("/api/marketplace-orders/?o=-created,state")] // explode: false array, comma-separated
    [InlineData("/api/marketplace-orders/?can_approve_as_provider=true&type=Create")]
    [InlineData($"/api/marketplace-orders/{Id}/")]
    [InlineData("/api/marketplace-orders/7d1c5e4a2b3f4c8d9e0f1a2b3c4d5e6f/")] // Waldur's own hex form
    [InlineData("/api/users/me/")]
    [InlineData($"http://waldur.test:8080/api/marketplace-provider-offerings/{Id}/")]
    public void Valid_gets_pass(string url) => AssertValid(new HttpRequestRecord("GET", url));

    [Fact]
    public void Approve_by_provider_with_empty_object_passes() =>
        AssertValid(Post($"/api/marketplace-orders/{Id}/approve_by_provider/", "{}"));

    [Fact]
    public void Approve_by_provider_without_body_passes_because_its_body_is_optional() =>
        AssertValid(Post($"/api/marketplace-orders/{Id}/approve_by_provider/", null));

    [Fact]
    public void Set_usage_with_valid_body_passes() =>
        AssertValid(Post(SetUsage, $$"""{"plan_period":"{{Id}}","usages":[{"type":"cpu","amount":"120.5","description":"CPU"},{"type":"ram","amount":"-3","recurring":true}]}"""));

    [Fact]
    public void Submit_report_passes() =>
        AssertValid(Post($"/api/marketplace-provider-resources/{Id}/submit_report/", """{"report":[{"header":"h","body":"b"}]}"""));

    [Fact]
    public void Set_state_done_without_body_or_with_empty_object_passes()
    {
        AssertValid(Post($"/api/marketplace-orders/{Id}/set_state_done/", null));
        AssertValid(Post($"/api/marketplace-orders/{Id}/set_state_done/", "{}"));
    }

    [Fact]
    public void Nullable_properties_accept_null_in_3_0() =>
        AssertValid(Post("/api/marketplace-site-agent-identities/", $$$"""{"offering":"{{{Id}}}","name":"agent","version":null,"dependencies":{"x":1},"last_restarted":"2024-05-01T10:00:00+02:00"}"""));

    [Fact]
    public void Unknown_path_is_reported()
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", "/api/marketplace-nonsense/"), ContractViolationKind.UnknownPath);
        Assert.Contains("'/api/marketplace-nonsense/'", violation.Message);
        Assert.Contains("waldur.yaml", violation.Message);
    }

    [Fact]
    public void Wrong_method_is_reported_with_the_declared_ones()
    {
        var violation = SingleViolation(new HttpRequestRecord("DELETE", $"/api/marketplace-orders/{Id}/"), ContractViolationKind.MethodNotAllowed);
        Assert.Contains("DELETE is not declared for /api/marketplace-orders/{uuid}/", violation.Message);
        Assert.Contains("declared: GET", violation.Message);
    }

    [Theory]
    [InlineData("/api/marketplace-orders", "/api/marketplace-orders/")]
    [InlineData($"/api/marketplace-orders/{Id}", "/api/marketplace-orders/{uuid}/")]
    [InlineData("/api/users/me", "/api/users/me/")]
    public void Missing_trailing_slash_is_reported(string url, string declared)
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", url), ContractViolationKind.TrailingSlashMismatch);
        Assert.Contains(declared, violation.Message);
        Assert.Contains("trailing slash", violation.Message);
    }

    [Fact]
    public void Non_uuid_path_parameter_is_reported()
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", "/api/marketplace-orders/42/"), ContractViolationKind.InvalidPathParameter);
        Assert.Equal("path.uuid", violation.Location);
        Assert.Contains("'42' is not a valid uuid", violation.Message);
    }

    [Fact]
    public void Empty_path_parameter_does_not_match_a_template() =>
        SingleViolation(new HttpRequestRecord("POST", "/api/marketplace-orders//approve_by_provider/"), ContractViolationKind.UnknownPath);

    [Fact]
    public void Undeclared_query_parameter_is_reported()
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", "/api/marketplace-orders/?state=done&offering=x&bogus_filter=1"), ContractViolationKind.UnknownQueryParameter);
        Assert.Equal("query.bogus_filter", violation.Location);
        Assert.Contains("GET /api/marketplace-orders/", violation.Message);
    }

    [Fact]
    public void Bad_enum_value_in_query_is_reported_with_the_allowed_values()
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", "/api/marketplace-orders/?state=executing&state=bogus"), ContractViolationKind.InvalidQueryParameter);
        Assert.Equal("query.state", violation.Location);
        Assert.Contains("'bogus'", violation.Message);
        Assert.Contains("pending-provider", violation.Message);
    }

    [Theory]
    [InlineData("/api/marketplace-orders/?page=two", "expected integer")]
    [InlineData("/api/marketplace-orders/?can_approve_as_provider=maybe", "expected boolean")]
    [InlineData("/api/marketplace-orders/?offering_uuid=abc", "not a valid uuid")]
    [InlineData("/api/marketplace-orders/?o=-created,sideways", "'sideways'")]
    [InlineData("/api/marketplace-component-usages/?billing_period=2024-13-01", "not a valid date")]
    public void Query_values_are_checked_against_their_schema(string url, string expected)
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", url), ContractViolationKind.InvalidQueryParameter);
        Assert.Contains(expected, violation.Message);
    }

    [Fact]
    public void Repeating_a_scalar_query_parameter_is_reported()
    {
        var violation = SingleViolation(new HttpRequestRecord("GET", $"/api/marketplace-orders/?offering_uuid={Id}&offering_uuid={Id}"), ContractViolationKind.RepeatedQueryParameter);
        Assert.Equal("query.offering_uuid", violation.Location);
    }

    [Fact]
    public void Missing_required_body_field_is_reported()
    {
        var violation = SingleViolation(Post(SetUsage, $$"""{"resource":"{{Id}}"}"""), ContractViolationKind.BodySchema);
        Assert.Equal("body", violation.Location);
        Assert.Contains("required property 'usages' is missing", violation.Message);
    }

    [Fact]
    public void Amount_as_a_json_number_is_reported_because_the_schema_says_decimal_string()
    {
        var violation = SingleViolation(Post(SetUsage, """{"usages":[{"type":"cpu","amount":12.5}]}"""), ContractViolationKind.BodySchema);
        Assert.Equal("body.usages[0].amount", violation.Location);
        Assert.Equal("expected string, got number 12.5", violation.Message);
    }

    [Fact]
    public void Amount_with_three_decimals_breaks_the_decimal_pattern()
    {
        var violation = SingleViolation(Post(SetUsage, """{"usages":[{"type":"cpu","amount":"1.234"}]}"""), ContractViolationKind.BodySchema);
        Assert.Equal("body.usages[0].amount", violation.Location);
        Assert.Contains("does not match pattern", violation.Message);
    }

    [Fact]
    public void Nested_required_fields_and_types_are_reported_with_their_location()
    {
        var violations = Waldur.Validate(Post($"/api/marketplace-provider-resources/{Id}/submit_report/", """{"report":[{"header":"h"},{"header":1,"body":"b"}]}"""));

        Assert.Collection(
            violations.OrderBy(v => v.Location, StringComparer.Ordinal),
            v => Assert.Equal(("body.report[0]", "required property 'body' is missing"), (v.Location, v.Message)),
            v => Assert.Equal(("body.report[1].header", "expected string, got number 1"), (v.Location, v.Message)));
    }

    [Fact]
    public void Enum_reached_through_allOf_ref_is_checked()
    {
        var violation = SingleViolation(Post($"/api/event-subscriptions/{Id}/create_queue/", $$"""{"offering_uuid":"{{Id}}","object_type":"planet"}"""), ContractViolationKind.BodySchema);
        Assert.Equal("body.object_type", violation.Location);
        Assert.Contains("'planet' is not one of", violation.Message);
    }

    [Fact]
    public void String_constraints_are_checked() =>
        Assert.Contains("minLength", SingleViolation(Post("/api/marketplace-site-agent-identities/", $$"""{"offering":"{{Id}}","name":""}"""), ContractViolationKind.BodySchema).Message);

    [Fact]
    public void Malformed_json_body_is_reported()
    {
        var violation = SingleViolation(Post(SetUsage, """{"usages": [}"""), ContractViolationKind.MalformedBody);
        Assert.Contains("not valid JSON", violation.Message);
    }

    [Fact]
    public void Duplicate_keys_in_a_json_body_are_malformed() =>
        SingleViolation(Post(SetUsage, """{"usages":[],"usages":[]}"""), ContractViolationKind.MalformedBody);

    [Fact]
    public void Body_on_an_operation_without_request_body_is_reported()
    {
        var violation = SingleViolation(Post($"/api/marketplace-orders/{Id}/set_state_done/", """{"state":"done"}"""), ContractViolationKind.UnexpectedBody);
        Assert.Contains("POST /api/marketplace-orders/{uuid}/set_state_done/ declares no request body", violation.Message);
    }

    [Fact]
    public void Required_body_that_is_missing_is_reported() =>
        SingleViolation(Post(SetUsage, null), ContractViolationKind.MissingBody);

    [Fact]
    public void Body_with_an_undeclared_content_type_is_reported()
    {
        var violation = SingleViolation(Post(SetUsage, """{"usages":[]}""") with { ContentType = "text/plain; charset=utf-8" }, ContractViolationKind.UnsupportedContentType);
        Assert.Contains("'text/plain'", violation.Message);
        Assert.Contains("application/json", violation.Message);
    }

    [Fact]
    public void Content_type_is_taken_from_headers_and_parameters_are_ignored() =>
        AssertValid(new HttpRequestRecord("POST", SetUsage)
        {
            Body = """{"usages":[]}""",
            Headers = HttpRequestRecord.HeadersOf(("content-type", "application/json; charset=utf-8")),
        });

    [Fact]
    public void Auth_is_only_checked_when_enforced()
    {
        var request = new HttpRequestRecord("GET", "/api/users/me/");
        AssertValid(request);

        var strict = Waldur.WithAuthEnforced();
        var violation = Assert.Single(strict.Validate(request));
        Assert.Equal(ContractViolationKind.MissingAuthentication, violation.Kind);
        Assert.Contains("tokenAuth (header 'Authorization')", violation.Message);

        Assert.Empty(strict.Validate(request with { Headers = HttpRequestRecord.HeadersOf(("Authorization", "Token abc")) }));
        Assert.Empty(strict.Validate(request with { Headers = HttpRequestRecord.HeadersOf(("authorization", "Bearer abc")) }));
    }

    [Fact]
    public void Base_path_is_stripped_before_matching()
    {
        var mounted = Waldur.WithOptions(new OpenApiContractOptions { BasePath = "/waldur/" });

        Assert.Empty(mounted.Validate(new HttpRequestRecord("GET", "/waldur/api/users/me/")));
        Assert.Equal(ContractViolationKind.UnknownPath, Assert.Single(mounted.Validate(new HttpRequestRecord("GET", "/api/users/me/"))).Kind);
    }

    [Fact]
    public void Several_violations_of_one_request_are_all_reported()
    {
        var violations = Waldur.Validate(new HttpRequestRecord("GET", "/api/marketplace-orders/?state=bogus&nope=1") { Body = "{\"a\":1}", ContentType = "application/json" });

        Assert.Equal(
            [ContractViolationKind.UnknownQueryParameter, ContractViolationKind.InvalidQueryParameter, ContractViolationKind.UnexpectedBody],
            violations.Select(v => v.Kind).Order());
    }

    [Fact]
    public void Assert_conforms_throws_an_xunit_exception_naming_the_request()
    {
        var ex = Assert.Throws<ContractViolationException>(() => Waldur.AssertConforms(new HttpRequestRecord("get", "/api/marketplace-orders/?state=bogus")));

        Assert.IsAssignableFrom<Xunit.Sdk.XunitException>(ex);
        Assert.Contains("1 of 1 request does not conform to waldur.yaml", ex.Message);
        Assert.Contains("GET /api/marketplace-orders/?state=bogus", ex.Message);
        Assert.Contains("query.state: query parameter 'state'", ex.Message);
    }

    [Fact]
    public void The_full_upstream_spec_knows_operations_the_trim_left_out()
    {
        var request = new HttpRequestRecord("GET", "/api/customers/");

        Assert.Equal(ContractViolationKind.UnknownPath, Assert.Single(Waldur.Validate(request)).Kind);
        Assert.Empty(UpstreamSpecs.WaldurUpstream.Validate(request));
    }

    private static HttpRequestRecord Post(string url, string? json) =>
        new("POST", url) { Body = json, ContentType = json is null ? null : "application/json" };

    private static void AssertValid(HttpRequestRecord request)
    {
        var violations = Waldur.Validate(request);
        Assert.True(violations.Count == 0, $"{request}:{Environment.NewLine}{string.Join(Environment.NewLine, violations)}");
    }

    private static ContractViolation SingleViolation(HttpRequestRecord request, ContractViolationKind kind)
    {
        var violations = Waldur.Validate(request);
        Assert.True(violations.Count == 1, $"expected one {kind} violation for {request}, got:{Environment.NewLine}{string.Join(Environment.NewLine, violations)}");
        Assert.Equal(kind, violations[0].Kind);
        return violations[0];
    }
}
