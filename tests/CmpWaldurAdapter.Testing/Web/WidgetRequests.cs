using System.Net.Http.Headers;
using System.Net.Http.Json;

namespace CmpWaldurAdapter.Testing.Web;

/// <summary>What the widget sends, from a buyer's site and a visitor's address (behind a trusted proxy).</summary>
public static class WidgetRequests
{
    public const string Origin = "https://shop.example.com";

    public static Task<HttpResponseMessage> SessionAsync(HttpClient client, string key, string address) => SessionAsync(client, key, address, null);

    /// <summary>A session started as the widget renews one: with the previous session's token, from <paramref name="origin"/>.</summary>
    public static async Task<HttpResponseMessage> SessionAsync(HttpClient client, string key, string address, string? previous, string origin = Origin)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/session") { Content = JsonContent.Create<object>(previous is null ? new { key } : new { key, previous }) };
        request.Headers.Add("Origin", origin);
        request.Headers.Add("X-Forwarded-For", address);
        return await client.SendAsync(request);
    }

    public static Task<HttpResponseMessage> ChatAsync(HttpClient client, string token, string address, string message) => ChatAsync(client, token, address, message, null);

    /// <summary>A message sent as the widget sends it, with its message <paramref name="id"/> (the same on every send of it).</summary>
    public static async Task<HttpResponseMessage> ChatAsync(HttpClient client, string token, string address, string message, string? id)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/widget/v1/chat") { Content = JsonContent.Create<object>(id is null ? new { message } : new { message, id }) };
        request.Headers.Add("Origin", Origin);
        request.Headers.Add("X-Forwarded-For", address);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await client.SendAsync(request);
    }
}
