using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Ragflow.Api;
using CmpWaldurAdapter.Ragflow.Contracts;
using CmpWaldurAdapter.Testing.Contracts;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.UnitTests.Ragflow;

/// <summary>The hand-written RAGFlow spec: self-contained, and strict where RAGFlow is (or where a slip would be costly).</summary>
public sealed class RagflowSpecTests
{
    private static OpenApiContract Ragflow => UpstreamSpecs.Ragflow.WithAuthEnforced();

    [Fact]
    public void Every_ref_resolves_and_every_operation_is_named()
    {
        var document = UpstreamSpecs.Ragflow.Document;
        var references = new List<string>();
        Collect(document.Root, references);

        Assert.NotEmpty(references);
        Assert.All(references, r => Assert.True(document.TryResolve(r, out var target) && target is not null, $"{r} does not resolve"));
        var operations = document.Root["paths"]!.AsObject().SelectMany(p => p.Value!.AsObject().Where(o => o.Key != "parameters")).ToList();
        Assert.Equal(10, operations.Count);
        Assert.All(operations, o => Assert.NotNull(o.Value!["operationId"]));
    }

    [Fact]
    public void The_dataset_the_adapter_creates_is_accepted_and_nulls_are_not_sent()
    {
        var request = RagflowTenant.CreateRequest("cmp-0123456789abcdef0123456789abcdef", Guid.NewGuid());
        var body = JsonSerializer.Serialize(request, RagflowServiceCollectionExtensions.RagflowJson);

        Assert.Empty(Ragflow.Validate(Post("/api/v1/datasets", body)));
        Assert.DoesNotContain("null", body, StringComparison.Ordinal);
        var json = JsonNode.Parse(body)!;
        Assert.Equal("me", json["permission"]!.GetValue<string>());
        Assert.False(json["parser_config"]!["raptor"]!["use_raptor"]!.GetValue<bool>());
        Assert.False(json["parser_config"]!["graphrag"]!["use_graphrag"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("""{"name":"x","permission":null}""", "body.permission")]
    [InlineData("""{"name":"x","permission":"team"}""", "body.permission")]
    [InlineData("""{"name":"x","colour":"red"}""", "body.colour")]
    [InlineData("""{"name":"x","parser_config":{"chunk_token_num":"512"}}""", "body.parser_config.chunk_token_num")]
    [InlineData("""{"name":""}""", "body.name")]
    public void Create_requests_ragflow_would_reject_or_that_would_share_a_dataset_break_the_contract(string body, string location)
    {
        Assert.Contains(Ragflow.Validate(Post("/api/v1/datasets", body)), v => v.Location.StartsWith(location, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("""{"ids":[]}""")]
    [InlineData("""{"ids":null}""")]
    [InlineData("""{"delete_all":true}""")]
    [InlineData("""{"ids":["a"],"delete_all":true}""")]
    [InlineData("""{}""")]
    public void A_delete_that_names_no_ids_or_asks_for_everything_breaks_the_contract(string body)
    {
        Assert.NotEmpty(Ragflow.Validate(new HttpRequestRecord("DELETE", "/api/v1/datasets") { Body = body, ContentType = "application/json", Headers = Auth }));
        Assert.NotEmpty(Ragflow.Validate(new HttpRequestRecord("DELETE", "/api/v1/datasets/0123456789abcdef0123456789abcdef/documents") { Body = body, ContentType = "application/json", Headers = Auth }));
        Assert.Empty(Ragflow.Validate(new HttpRequestRecord("DELETE", "/api/v1/datasets") { Body = """{"ids":["0123456789abcdef0123456789abcdef"]}""", ContentType = "application/json", Headers = Auth }));
    }

    [Fact]
    public void The_delete_request_type_cannot_express_delete_all_without_ids()
    {
        var body = JsonSerializer.Serialize(new DeleteByIdsRequest { Ids = ["0123456789abcdef0123456789abcdef"] }, RagflowServiceCollectionExtensions.RagflowJson);

        Assert.Equal("""{"ids":["0123456789abcdef0123456789abcdef"]}""", body);
    }

    [Fact]
    public void Health_needs_no_key_and_everything_else_does()
    {
        Assert.Empty(Ragflow.Validate(new HttpRequestRecord("GET", "/api/v1/system/healthz")));
        var violation = Assert.Single(Ragflow.Validate(new HttpRequestRecord("GET", "/api/v1/datasets?name=x")));
        Assert.Equal(ContractViolationKind.MissingAuthentication, violation.Kind);
        Assert.Contains(Ragflow.Validate(new HttpRequestRecord("GET", "/api/v1/datasets?page_size=101") { Headers = Auth }), v => v.Location == "query.page_size");
        Assert.Contains(Ragflow.Validate(new HttpRequestRecord("GET", "/api/v1/datasets?owner=me") { Headers = Auth }), v => v.Kind == ContractViolationKind.UnknownQueryParameter);
    }

    private static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> Auth = HttpRequestRecord.HeadersOf(("Authorization", "Bearer ragflow-key"));

    private static HttpRequestRecord Post(string path, string body) => new("POST", path) { Body = body, ContentType = "application/json", Headers = Auth };

    private static void Collect(JsonNode? node, List<string> found)
    {
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, value) in obj)
                {
                    if (key == "$ref")
                    {
                        found.Add(value!.GetValue<string>());
                    }
                    else
                    {
                        Collect(value, found);
                    }
                }

                break;
            case JsonArray array:
                foreach (var item in array)
                {
                    Collect(item, found);
                }

                break;
        }
    }
}

/// <summary>Which RAGFlow failures are worth retrying, and which mean "not there".</summary>
public sealed class RagflowErrorTests
{
    [Theory]
    [InlineData(100, "ConnectionError('es')", 200, true)]
    [InlineData(102, "Internal server error", 200, true)]
    [InlineData(102, "Database operation failed", 200, true)]
    [InlineData(105, "connection", 200, true)]
    [InlineData(0, null, 502, true)]
    [InlineData(101, "Field: <name> - Message: <...>", 200, false)]
    [InlineData(102, "User 't' lacks permission for dataset 'x'", 200, false)]
    [InlineData(102, "Can't parse document that is currently being processed", 200, false)]
    [InlineData(109, "no authorization", 200, false)]
    [InlineData(401, "<Unauthorized '401: Unauthorized'>", 401, false)]
    [InlineData(404, "Not Found: /api/v1/nope", 404, false)]
    public void Transient_is_5xx_code_100_and_the_internal_102s(int code, string? message, int status, bool transient)
    {
        Assert.Equal(transient, RagflowErrors.IsTransient(code, message, (HttpStatusCode)status));
    }

    [Theory]
    [InlineData(102, "User 't' lacks permission for dataset 'x'", true)]
    [InlineData(108, "User 't' lacks permission for datasets: 'x'", true)]
    [InlineData(102, "The dataset doesn't exist", true)]
    [InlineData(102, "You don't own the dataset x.", true)]
    [InlineData(102, "Internal server error", false)]
    [InlineData(101, "lacks permission", false)]
    public void Not_found_is_the_ownership_102_family(int code, string message, bool notFound)
    {
        Assert.Equal(notFound, RagflowErrors.IsNotFound(code, message));
    }

    [Fact]
    public void The_envelope_is_found_behind_refits_wrapper()
    {
        var inner = new RagflowException(102, "lacks permission", HttpStatusCode.OK, "/api/v1/datasets");
        var wrapped = new InvalidOperationException("outer", new HttpRequestException("middle", inner));

        Assert.Same(inner, RagflowException.Find(wrapped));
        Assert.Null(RagflowException.Find(new HttpRequestException("plain")));
    }

    [Theory]
    [InlineData("""{"code":0,"data":{"id":"x"}}""", false, 0)]
    [InlineData("""{"code":102,"message":"m"}""", true, 102)]
    [InlineData("""{"db":"ok","status":"ok"}""", false, 0)]
    [InlineData("<html>502 Bad Gateway</html>", false, 0)]
    [InlineData("""[{"code":1}]""", false, 0)]
    public void Only_a_non_zero_code_is_an_error(string body, bool error, int code)
    {
        Assert.Equal((error, code), (RagflowEnvelopeHandler.TryReadError(System.Text.Encoding.UTF8.GetBytes(body), out var read, out _), read));
    }
}
