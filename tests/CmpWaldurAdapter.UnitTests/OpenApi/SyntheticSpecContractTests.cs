using CmpWaldurAdapter.Testing.Contracts;

namespace CmpWaldurAdapter.UnitTests.OpenApi;

/// <summary>
/// Checker features the Waldur spec does not exercise, on small inline specs: OpenAPI 3.1
/// (type arrays, anyOf with null, $ref siblings), additionalProperties, forms, headers, auth.
/// </summary>
public sealed class SyntheticSpecContractTests
{
    private const string Id = "0b7e0a3c-8f61-4c55-9a8e-3f2d1c0b9a87";

    private const string Spec31 = """
        {
          "openapi": "3.1.0",
          "info": { "title": "synthetic", "version": "1" },
          "paths": {
            "/api/v1/items/{item_id}": {
              "parameters": [ { "name": "item_id", "in": "path", "required": true, "schema": { "type": "integer" } } ],
              "put": {
                "operationId": "put_item",
                "parameters": [
                  { "name": "mode", "in": "query", "required": true, "schema": { "anyOf": [ { "type": "string", "enum": ["fast", "safe"] }, { "type": "null" } ] } },
                  { "name": "tags", "in": "query", "schema": { "anyOf": [ { "type": "array", "items": { "type": "string" } }, { "type": "null" } ] } },
                  { "name": "X-Trace", "in": "header", "required": true, "schema": { "type": "string", "format": "uuid" } }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Item" } } } },
                "security": [ { "API key header": [] }, { "API key query": [] } ]
              }
            },
            "/api/v1/login": {
              "post": {
                "operationId": "login",
                "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": { "schema": { "$ref": "#/components/schemas/Login" } } } }
              }
            },
            "/api/v1/files": {
              "post": {
                "operationId": "upload",
                "requestBody": { "content": { "multipart/form-data": { "schema": { "type": "object", "required": ["file"], "properties": { "file": { "type": "string", "format": "binary" } } } } } }
              }
            },
            "/api/v1/health": { "get": { "operationId": "health" } }
          },
          "components": {
            "schemas": {
              "Item": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "name"],
                "properties": {
                  "id": { "type": "string", "format": "uuid", "readOnly": true },
                  "name": { "type": "string", "minLength": 1 },
                  "description": { "anyOf": [ { "type": "string" }, { "type": "null" } ] },
                  "labels": { "type": ["array", "null"], "items": { "type": "string" } },
                  "kind": { "$ref": "#/components/schemas/Kind", "description": "3.1 keeps $ref siblings" },
                  "size": { "$ref": "#/components/schemas/Size", "maximum": 10 },
                  "count": { "type": "integer", "minimum": 0 },
                  "ratio": { "type": "number", "exclusiveMaximum": 1 },
                  "due": { "type": "string", "format": "date" },
                  "at": { "type": "string", "format": "date-time" },
                  "meta": { "type": "object", "additionalProperties": { "type": "integer" } },
                  "choice": { "oneOf": [ { "type": "integer" }, { "const": "auto" } ] },
                  "parts": { "type": "array", "items": { "allOf": [ { "$ref": "#/components/schemas/Part" } ] } }
                }
              },
              "Kind": { "type": "string", "enum": ["a", "b"] },
              "Size": { "type": "integer" },
              "Part": { "type": "object", "required": ["n"], "properties": { "n": { "type": "integer" } } },
              "Login": {
                "type": "object",
                "required": ["username", "password"],
                "properties": { "username": { "type": "string" }, "password": { "type": "string" }, "scope": { "type": "string" } }
              }
            },
            "securitySchemes": {
              "API key header": { "type": "apiKey", "in": "header", "name": "x-api-key" },
              "API key query": { "type": "apiKey", "in": "query", "name": "x-api-key" }
            }
          }
        }
        """;

    private static readonly OpenApiContract Contract = OpenApiContract.Parse(Spec31, name: "synthetic 3.1");

    [Fact]
    public void Parses_as_3_1()
    {
        Assert.True(Contract.Document.IsOpenApi31);
        Assert.Equal("3.1.0", Contract.Document.OpenApiVersion);
    }

    [Fact]
    public void A_full_valid_request_passes_and_readonly_id_is_not_required() =>
        AssertValid(Put("""
            {"name":"n","description":null,"labels":null,"kind":"a","size":3,"count":0,"ratio":0.5,"due":"2024-02-29",
             "at":"2024-02-29T12:00:00Z","meta":{"x":1},"choice":"auto","parts":[{"n":1}]}
            """));

    [Theory]
    [InlineData("""{"name":"n","description":5}""", "body.description", "matches none of the 2 anyOf alternatives: (1) expected string, got number 5 (2) expected null")]
    [InlineData("""{"name":"n","labels":[1]}""", "body.labels[0]", "expected string, got number 1")]
    [InlineData("""{"name":"n","labels":"x"}""", "body.labels", "expected array or null")]
    [InlineData("""{"name":"n","extra":true}""", "body.extra", "not allowed (additionalProperties: false")]
    [InlineData("""{"name":"n","meta":{"x":"1"}}""", "body.meta.x", "expected integer")]
    [InlineData("""{"name":"n","kind":"c"}""", "body.kind", "'c' is not one of [a, b]")]
    [InlineData("""{"name":"n","size":11}""", "body.size", "above the maximum 10")]
    [InlineData("""{"name":"n","count":1.5}""", "body.count", "expected integer, got number 1.5")]
    [InlineData("""{"name":"n","count":-1}""", "body.count", "below the minimum 0")]
    [InlineData("""{"name":"n","ratio":1}""", "body.ratio", "exclusive maximum 1")]
    [InlineData("""{"name":"n","due":"2024-02-30"}""", "body.due", "not a valid date")]
    [InlineData("""{"name":"n","at":"yesterday"}""", "body.at", "not a valid date-time")]
    [InlineData("""{"name":"n","choice":"manual"}""", "body.choice", "string 'manual' is not the constant string 'auto'")] // Only the string branch fits the type.
    [InlineData("""{"name":"n","parts":[{}]}""", "body.parts[0]", "required property 'n' is missing")]
    [InlineData("""{"name":null}""", "body.name", "expected string, got null")]
    [InlineData("""[]""", "body", "expected object, got array")]
    public void Body_violations_are_located_and_explained(string body, string location, string message)
    {
        var violation = Assert.Single(Contract.Validate(Put(body)));
        Assert.Equal(ContractViolationKind.BodySchema, violation.Kind);
        Assert.Equal(location, violation.Location);
        Assert.Contains(message, violation.Message);
    }

    [Fact]
    public void Required_query_parameter_missing_is_reported()
    {
        var violation = Assert.Single(Contract.Validate(Put("""{"name":"n"}""", query: "")));
        Assert.Equal((ContractViolationKind.MissingQueryParameter, "query.mode"), (violation.Kind, violation.Location));
    }

    [Fact]
    public void Query_values_go_through_anyOf_with_null()
    {
        AssertValid(Put("""{"name":"n"}""", query: "mode=safe&tags=a&tags=b"));
        var violation = Assert.Single(Contract.Validate(Put("""{"name":"n"}""", query: "mode=slow")));
        Assert.Equal(ContractViolationKind.InvalidQueryParameter, violation.Kind);
        Assert.Contains("'slow' is not one of [fast, safe]", violation.Message);
    }

    [Fact]
    public void Path_parameter_type_is_checked()
    {
        var violation = Assert.Single(Contract.Validate(Put("""{"name":"n"}""", itemId: "abc")));
        Assert.Equal((ContractViolationKind.InvalidPathParameter, "path.item_id"), (violation.Kind, violation.Location));
        Assert.Contains("expected integer, got 'abc'", violation.Message);
    }

    [Fact]
    public void Required_header_parameters_are_checked()
    {
        var missing = Assert.Single(Contract.Validate(Put("""{"name":"n"}""") with { Headers = HttpRequestRecord.HeadersOf() }));
        Assert.Equal((ContractViolationKind.MissingHeaderParameter, "header.X-Trace"), (missing.Kind, missing.Location));

        var invalid = Assert.Single(Contract.Validate(Put("""{"name":"n"}""") with { Headers = HttpRequestRecord.HeadersOf(("x-trace", "nope")) }));
        Assert.Equal(ContractViolationKind.InvalidHeaderParameter, invalid.Kind);
    }

    [Fact]
    public void Api_key_auth_is_accepted_in_header_or_query_when_enforced()
    {
        var strict = Contract.WithAuthEnforced();
        var anonymous = Put("""{"name":"n"}""");

        var violation = Assert.Single(strict.Validate(anonymous));
        Assert.Equal(ContractViolationKind.MissingAuthentication, violation.Kind);
        Assert.Contains("API key header (header 'x-api-key')", violation.Message);
        Assert.Contains("API key query (query 'x-api-key')", violation.Message);

        Assert.Empty(strict.Validate(anonymous with { Headers = HttpRequestRecord.HeadersOf(("X-Trace", Id), ("x-api-key", "k")) }));
        // The api-key query parameter is declared by the security scheme, so it is never "unknown".
        Assert.Empty(strict.Validate(Put("""{"name":"n"}""", query: "mode=fast&x-api-key=k")));
        Assert.Empty(Contract.Validate(Put("""{"name":"n"}""", query: "mode=fast&x-api-key=k")));
    }

    [Fact]
    public void Form_urlencoded_required_fields_are_checked_by_name()
    {
        AssertValid(Form("/api/v1/login", "application/x-www-form-urlencoded", "username=a&password=b+c"));

        var violation = Assert.Single(Contract.Validate(Form("/api/v1/login", "application/x-www-form-urlencoded", "username=a&scope=x")));
        Assert.Equal((ContractViolationKind.BodySchema, "body.password"), (violation.Kind, violation.Location));
        Assert.Contains("field 'password' is missing", violation.Message);

        var json = Assert.Single(Contract.Validate(Form("/api/v1/login", "application/json", """{"username":"a","password":"b"}""")));
        Assert.Equal(ContractViolationKind.UnsupportedContentType, json.Kind);
    }

    [Fact]
    public void Multipart_required_fields_are_checked_by_name()
    {
        const string Boundary = "b0undary";
        const string ContentType = $"multipart/form-data; boundary={Boundary}";
        var withFile = $"--{Boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{Boundary}--\r\n";
        var withoutFile = $"--{Boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nx\r\n--{Boundary}--\r\n";

        AssertValid(Form("/api/v1/files", ContentType, withFile));
        AssertValid(Form("/api/v1/files", ContentType, withFile.Replace("name=\"file\"", "name=file", StringComparison.Ordinal)));
        var violation = Assert.Single(Contract.Validate(Form("/api/v1/files", ContentType, withoutFile)));
        Assert.Equal("body.file", violation.Location);
    }

    [Fact]
    public void Get_without_body_or_with_an_empty_object_passes_but_not_with_content()
    {
        AssertValid(new HttpRequestRecord("GET", "/api/v1/health"));
        AssertValid(new HttpRequestRecord("GET", "/api/v1/health") { Body = " { } ", ContentType = "application/json" });
        Assert.Equal(ContractViolationKind.UnexpectedBody, Assert.Single(Contract.Validate(new HttpRequestRecord("GET", "/api/v1/health") { Body = "[]" })).Kind);
    }

    [Fact]
    public void Concrete_paths_win_over_templates_and_percent_encoding_is_decoded()
    {
        const string Spec = """
            openapi: 3.0.3
            info: { title: precedence, version: '1' }
            paths:
              /things/{name}/:
                get:
                  parameters:
                    - { in: path, name: name, required: true, schema: { type: string, enum: ['a b'] } }
              /things/special/:
                post: {}
            """;
        var contract = OpenApiContract.Parse(Spec);

        Assert.Empty(contract.Validate(new HttpRequestRecord("POST", "/things/special/")));
        Assert.Empty(contract.Validate(new HttpRequestRecord("GET", "/things/a%20b/")));
        Assert.Equal(ContractViolationKind.InvalidPathParameter, Assert.Single(contract.Validate(new HttpRequestRecord("GET", "/things/c/"))).Kind);
    }

    [Fact]
    public void Openapi_3_0_nullable_and_ref_siblings_follow_3_0_rules()
    {
        const string Spec = """
            openapi: 3.0.3
            info: { title: nullable, version: '1' }
            paths:
              /x/:
                post:
                  requestBody:
                    content:
                      application/json:
                        schema:
                          type: object
                          properties:
                            maybe: { type: string, nullable: true }
                            never: { type: string }
                            ref: { $ref: '#/components/schemas/S', type: integer }
            components:
              schemas:
                S: { type: string }
            """;
        var contract = OpenApiContract.Parse(Spec);
        HttpRequestRecord Body(string json) => new("POST", "/x/") { Body = json, ContentType = "application/json" };

        Assert.Empty(contract.Validate(Body("""{"maybe":null,"ref":"text"}""")));
        Assert.Equal("body.never", Assert.Single(contract.Validate(Body("""{"never":null}"""))).Location);
    }

    private static HttpRequestRecord Put(string body, string query = "mode=fast", string itemId = "7") =>
        new("PUT", $"/api/v1/items/{itemId}{(query.Length > 0 ? "?" + query : "")}")
        {
            Body = body,
            ContentType = "application/json",
            Headers = HttpRequestRecord.HeadersOf(("X-Trace", Id)),
        };

    private static HttpRequestRecord Form(string path, string contentType, string body) =>
        new("POST", path) { Body = body, ContentType = contentType };

    private static void AssertValid(HttpRequestRecord request)
    {
        var violations = Contract.Validate(request);
        Assert.True(violations.Count == 0, $"{request}:{Environment.NewLine}{string.Join(Environment.NewLine, violations)}");
    }
}
