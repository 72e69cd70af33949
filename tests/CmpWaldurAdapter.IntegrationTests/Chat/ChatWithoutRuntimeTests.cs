using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.ApiKeys;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Credits;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Chat;

/// <summary>An adapter without Langflow (record-only provisioning) answers chat with a clear 503 and charges nothing.</summary>
public sealed class ChatWithoutRuntimeTests
{
    [Fact]
    public async Task Chat_is_503_with_a_clear_reason_and_nothing_is_held_or_charged()
    {
        await using var bed = await CreditTestBed.CreateAsync(DatabaseProvider.Sqlite);
        var server = await bed.StartServerAsync();
        var subscription = await bed.AddSubscriptionAsync();
        await bed.Ledger.GrantAsync(subscription.CustomerId, 10, "test");
        var key = await server.Services.GetRequiredService<ApiKeyService>().CreateAsync(subscription.Id, ApiKeyKind.Secret, "k", CancellationToken.None);
        using var http = server.CreateClient();
        http.DefaultRequestHeaders.Authorization = new("Bearer", key.Plaintext);

        using var response = await http.PostAsync("/v1/chat/completions", new StringContent("""{"message":"Hi"}""", System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
        Assert.Equal("agent_unavailable", error["code"]!.GetValue<string>());
        Assert.Contains("no agent runtime (Langflow) is configured", error["message"]!.GetValue<string>());
        var balance = await bed.Ledger.BalanceAsync(subscription.CustomerId);
        Assert.Equal((10, 0), (balance.Balance, balance.Reserved));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/models")).StatusCode);
    }
}
