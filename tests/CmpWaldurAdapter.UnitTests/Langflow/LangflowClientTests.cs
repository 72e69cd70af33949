using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Langflow.Api;
using CmpWaldurAdapter.Langflow.Contracts;
using CmpWaldurAdapter.Provisioning;
using CmpWaldurAdapter.Testing.Contracts;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.UnitTests.Langflow;

/// <summary>The Langflow client's hand-written parts: the run response, per-request credentials, and the request bodies it builds.</summary>
public sealed class LangflowClientTests
{
    // The documented non-stream answer of POST /api/v1/run (the spec types it as {}).
    private const string RunAnswer = """
        { "session_id": "res-7f3a:conv-91c2",
          "outputs": [ { "inputs": {"input_value": "Hello"},
                         "outputs": [ { "results": { "message": { "text": "Hi! How can I help?", "sender": "Machine", "sender_name": "AI",
                                           "session_id": "res-7f3a:conv-91c2", "flow_id": "f", "component_id": "ChatOutput-ylMzN",
                                           "properties": {"source": {"id": "OpenAIModel-x", "source": "gpt-4o-mini"}} } },
                                        "artifacts": {"message": "Hi! How can I help?"}, "outputs": {}, "logs": {},
                                        "messages": [ {"message": "Hi! How can I help?", "sender": "Machine", "type": "text"} ],
                                        "component_display_name": "Chat Output", "component_id": "ChatOutput-ylMzN",
                                        "timedelta": 1.2, "duration": "1.2 seconds" } ] } ] }
        """;

    [Fact]
    public void The_run_answer_reads_into_the_hand_written_dtos()
    {
        var answer = JsonSerializer.Deserialize<RunResponse>(RunAnswer, LangflowServiceCollectionExtensions.LangflowJson)!;

        Assert.Equal("res-7f3a:conv-91c2", answer.SessionId);
        Assert.Equal("Hi! How can I help?", answer.Text());
        var result = answer.Outputs[0].Outputs[0]!;
        Assert.Equal(("ChatOutput-ylMzN", "Chat Output", 1.2), (result.ComponentId, result.ComponentDisplayName, result.Timedelta));
    }

    [Theory]
    [InlineData("""{"outputs":[{"outputs":[{"messages":[{"message":"from messages"}]}]}]}""", "from messages")]
    [InlineData("""{"outputs":[{"outputs":[{"artifacts":{"message":"from artifacts"}}]}]}""", "from artifacts")]
    [InlineData("""{"outputs":[{"outputs":[null,{"results":{"message":{"text":"second"}}}]}]}""", "second")]
    [InlineData("""{"outputs":[{"outputs":[{"messages":[{"message":["part"]}]}]}]}""", null)]
    [InlineData("""{"outputs":[]}""", null)]
    public void The_reply_text_falls_back_as_langflows_own_clients_do(string json, string? text)
    {
        Assert.Equal(text, JsonSerializer.Deserialize<RunResponse>(json, LangflowServiceCollectionExtensions.LangflowJson)!.Text());
    }

    [Fact]
    public async Task Keys_go_in_the_header_tokens_as_bearer_and_nothing_in_the_query()
    {
        var seen = new List<HttpRequestMessage>();
        using var invoker = new HttpMessageInvoker(new LangflowAuthHandler { InnerHandler = new Recorder(seen) });

        await Send(invoker, LangflowCredential.FromApiKey("sk-tenant"));
        await Send(invoker, LangflowCredential.FromToken("jwt-superuser"));
        await Send(invoker, null);

        Assert.Equal(["sk-tenant"], seen[0].Headers.GetValues("x-api-key"));
        Assert.Null(seen[0].Headers.Authorization);
        Assert.Equal("Bearer jwt-superuser", seen[1].Headers.Authorization!.ToString());
        Assert.False(seen[1].Headers.Contains("x-api-key"));
        Assert.False(seen[2].Headers.Contains("x-api-key"));
        Assert.Null(seen[2].Headers.Authorization);
        Assert.All(seen, r => Assert.DoesNotContain("x-api-key", r.RequestUri!.Query, StringComparison.Ordinal));
        Assert.Equal("api key ***", LangflowCredential.FromApiKey("sk-secret").ToString());
        Assert.Equal("bearer ***", LangflowCredential.FromToken("jwt").ToString());
    }

    [Fact]
    public void The_generated_contracts_read_31_nullables_as_plain_nullable_types()
    {
        Assert.Equal(typeof(string), typeof(FlowCreate).GetProperty(nameof(FlowCreate.Description))!.PropertyType);
        Assert.Equal(typeof(Guid?), typeof(FlowCreate).GetProperty(nameof(FlowCreate.Folder_id))!.PropertyType);
        Assert.Equal(typeof(bool?), typeof(UserUpdate).GetProperty(nameof(UserUpdate.Is_active))!.PropertyType);
        Assert.Equal(typeof(AccessTypeEnum?), typeof(FlowUpdate).GetProperty(nameof(FlowUpdate.Access_type))!.PropertyType);
    }

    [Fact]
    public void The_bodies_the_adapter_sends_conform_to_the_trimmed_spec()
    {
        var langflow = UpstreamSpecs.Langflow.WithAuthEnforced();
        var key = HttpRequestRecord.HeadersOf(("x-api-key", "sk-tenant"));
        var flow = new FlowCreate
        {
            Name = "Customer Support Agent cmp-0123",
            Data = new JsonObject { ["nodes"] = new JsonArray(), ["edges"] = new JsonArray(), ["viewport"] = new JsonObject() },
            Folder_id = Guid.NewGuid(),
            Access_type = AccessTypeEnum.PRIVATE,
            Mcp_enabled = false,
        };

        Assert.Empty(langflow.Validate(Json("POST", "/api/v1/flows/", flow, key)));
        Assert.Empty(langflow.Validate(Json("PATCH", $"/api/v1/users/{Guid.NewGuid()}", new UserUpdate { Is_active = true }, HttpRequestRecord.HeadersOf(("Authorization", "Bearer jwt")))));
        Assert.Empty(langflow.Validate(Json("POST", "/api/v1/api_key/", new ApiKeyCreate { Name = TenantNames.ApiKeyName }, HttpRequestRecord.HeadersOf(("Authorization", "Bearer jwt")))));
        Assert.Empty(langflow.Validate(new HttpRequestRecord("POST", "/api/v1/login")
        {
            ContentType = "application/x-www-form-urlencoded",
            Body = "grant_type=password&username=cmp-x&password=p",
        }));
        // The trailing slash matters: FastAPI redirects the other form.
        Assert.Equal(ContractViolationKind.TrailingSlashMismatch, Assert.Single(langflow.Validate(Json("POST", "/api/v1/flows", flow, key))).Kind);
        // Nulls are not sent: to a PATCH they would mean "clear this field".
        Assert.Equal("{}", JsonSerializer.Serialize(new FlowUpdate(), LangflowServiceCollectionExtensions.LangflowJson));
    }

    private static HttpRequestRecord Json(string method, string path, object body, IReadOnlyDictionary<string, IReadOnlyList<string>> headers) =>
        new(method, path) { Body = JsonSerializer.Serialize(body, LangflowServiceCollectionExtensions.LangflowJson), ContentType = "application/json", Headers = headers };

    private static async Task Send(HttpMessageInvoker invoker, LangflowCredential? credential)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "http://langflow/api/v1/projects/");
        if (credential is not null)
        {
            request.Options.Set(new HttpRequestOptionsKey<LangflowCredential>(LangflowCredential.PropertyKey), credential);
        }

        using var response = await invoker.SendAsync(request, CancellationToken.None);
    }

    private sealed class Recorder(List<HttpRequestMessage> seen) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            seen.Add(request);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
        }
    }
}
