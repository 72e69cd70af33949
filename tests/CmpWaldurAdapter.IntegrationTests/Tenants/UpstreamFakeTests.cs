using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Testing.Fakes;

namespace CmpWaldurAdapter.IntegrationTests.Tenants;

/// <summary>The fakes set the traps the real upstreams set; if a fake went soft, the provisioning tests would prove less.</summary>
public sealed class UpstreamFakeTests : IDisposable
{
    private readonly LangflowFake _langflow = new();
    private readonly RagflowFake _ragflow = new();
    private readonly HttpClient _http = new(new HttpClientHandler { AllowAutoRedirect = false });

    public void Dispose()
    {
        _http.Dispose();
        _langflow.Dispose();
        _ragflow.Dispose();
    }

    [Fact]
    public async Task Langflow_redirects_a_wrong_trailing_slash_keeps_new_users_inactive_and_renames_clashes()
    {
        var redirect = await _http.GetAsync(new Uri(_langflow.Url, "api/v1/projects"));
        Assert.Equal(HttpStatusCode.TemporaryRedirect, redirect.StatusCode);
        Assert.EndsWith("/api/v1/projects/", redirect.Headers.Location!.ToString(), StringComparison.Ordinal);

        var created = await _http.PostAsJsonAsync(new Uri(_langflow.Url, "api/v1/users/"), new { username = "u", password = "p" });
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await Login("u", "p")).StatusCode); // waiting for approval
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.PostAsJsonAsync(new Uri(_langflow.Url, "api/v1/users/"), new { username = "u", password = "q" })).StatusCode);

        var admin = await Token(LangflowFake.SuperuserUsername, LangflowFake.SuperuserPassword);
        var user = Assert.Single(_langflow.Users);
        using (var activate = new HttpRequestMessage(HttpMethod.Patch, new Uri(_langflow.Url, $"api/v1/users/{user.Id}")) { Content = JsonContent.Create(new { is_active = true }) })
        {
            activate.Headers.Authorization = new AuthenticationHeaderValue("Bearer", admin);
            Assert.Equal(HttpStatusCode.OK, (await _http.SendAsync(activate)).StatusCode);
        }

        var tenant = await Token("u", "p");
        var names = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var create = new HttpRequestMessage(HttpMethod.Post, new Uri(_langflow.Url, "api/v1/flows/")) { Content = JsonContent.Create(new { name = "Agent", endpoint_name = "agent" }) };
            create.Headers.Authorization = new AuthenticationHeaderValue("Bearer", tenant);
            var flow = JsonNode.Parse(await (await _http.SendAsync(create)).Content.ReadAsStringAsync())!;
            names.Add($"{flow["name"]}|{flow["endpoint_name"]}");
        }

        Assert.Equal(["Agent|agent", "Agent (1)|agent-1", "Agent (2)|agent-2"], names);
    }

    [Fact]
    public async Task Ragflow_answers_errors_with_http_200_renames_twins_and_counts_unscoped_deletes()
    {
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", RagflowFake.ApiKey);

        var missing = JsonNode.Parse(await _http.GetStringAsync(new Uri(_ragflow.Url, "api/v1/datasets?name=nope")))!;
        Assert.Equal(102, missing["code"]!.GetValue<int>());
        Assert.Contains("lacks permission", missing["message"]!.GetValue<string>());

        await _http.PostAsJsonAsync(new Uri(_ragflow.Url, "api/v1/datasets"), new { name = "kb" });
        var twin = JsonNode.Parse(await (await _http.PostAsJsonAsync(new Uri(_ragflow.Url, "api/v1/datasets"), new { name = "KB" })).Content.ReadAsStringAsync())!;
        Assert.Equal("KB(1)", twin["data"]!["name"]!.GetValue<string>());

        var strict = JsonNode.Parse(await (await _http.PostAsJsonAsync(new Uri(_ragflow.Url, "api/v1/datasets"), new { name = "x", colour = "red" })).Content.ReadAsStringAsync())!;
        Assert.Equal(101, strict["code"]!.GetValue<int>());

        using var gone = new HttpRequestMessage(HttpMethod.Delete, new Uri(_ragflow.Url, "api/v1/datasets")) { Content = JsonContent.Create(new { ids = new[] { "0123456789abcdef0123456789abcdef" } }) };
        Assert.Equal(102, JsonNode.Parse(await (await _http.SendAsync(gone)).Content.ReadAsStringAsync())!["code"]!.GetValue<int>());
        Assert.Equal(2, _ragflow.Datasets.Count);

        using var everything = new HttpRequestMessage(HttpMethod.Delete, new Uri(_ragflow.Url, "api/v1/datasets")) { Content = JsonContent.Create(new { delete_all = true }) };
        await _http.SendAsync(everything);
        Assert.Empty(_ragflow.Datasets);
        Assert.Equal(1, _ragflow.UnscopedDeletes);

        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "ragflow-wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await _http.GetAsync(new Uri(_ragflow.Url, "api/v1/datasets"))).StatusCode);
    }

    private Task<HttpResponseMessage> Login(string username, string password) =>
        _http.PostAsync(new Uri(_langflow.Url, "api/v1/login"), new FormUrlEncodedContent(new Dictionary<string, string> { ["username"] = username, ["password"] = password }));

    private async Task<string> Token(string username, string password) =>
        JsonNode.Parse(await (await Login(username, password)).Content.ReadAsStringAsync())!["access_token"]!.GetValue<string>();
}
