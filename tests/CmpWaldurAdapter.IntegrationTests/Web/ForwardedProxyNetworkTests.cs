using System.Net;
using System.Net.Http.Json;
using CmpWaldurAdapter.Testing.Web;

namespace CmpWaldurAdapter.IntegrationTests.Web;

/// <summary>
/// X-Forwarded-For names the client only on connections from the listed proxy networks: a client that reaches the
/// adapter directly cannot pick the address the per-address limits count.
/// </summary>
public sealed class ForwardedProxyNetworkTests
{
    [Theory]
    [InlineData("10.0.0.0/8", false)] // the tests' connections come from 127.0.0.1: not the proxy
    [InlineData("127.0.0.0/8", true)]
    public async Task Forwarded_addresses_count_only_from_the_proxy_networks(string proxyNetwork, bool believed)
    {
        await using var bed = await BuyerWebTestBed.CreateAsync();
        bed.Settings["Web:TryMessagesPerAddress"] = "2";
        bed.Settings["Web:TrustForwardedHeaders"] = "true";
        bed.Settings["Web:ForwardedProxyNetworks:0"] = proxyNetwork;
        await bed.StartAsync();

        async Task<HttpStatusCode> SendAsync(string address)
        {
            using var visitor = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer(), AllowAutoRedirect = false }) { BaseAddress = bed.Url };
            using var request = new HttpRequestMessage(HttpMethod.Post, "/try/topic-assistant/messages") { Content = JsonContent.Create(new { message = "hi" }) };
            request.Headers.Add("X-Forwarded-For", address);
            return (await visitor.SendAsync(request)).StatusCode;
        }

        // Each message claims a new address: believed, none reaches its address's limit of 2.
        var answers = new List<HttpStatusCode>();
        foreach (var address in new[] { "203.0.113.1", "203.0.113.2", "203.0.113.3" })
        {
            answers.Add(await SendAsync(address));
        }

        Assert.Equal(believed ? [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK] : [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], answers);
    }
}
