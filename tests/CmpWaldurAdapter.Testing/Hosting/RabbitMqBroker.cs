using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace CmpWaldurAdapter.Testing.Hosting;

/// <summary>
/// The real RabbitMQ broker (with web-STOMP) that <c>scripts/test.sh</c> starts on loopback, driven
/// through its management API: plays the part of Waldur's broker administration in tests.
/// </summary>
public sealed class RabbitMqBroker : IDisposable
{
    private readonly HttpClient _api;

    public RabbitMqBroker()
    {
        WebSocketUrl = new Uri(Require("CMP_TEST_RABBITMQ_WS"));
        _api = new HttpClient { BaseAddress = new Uri(Require("CMP_TEST_RABBITMQ_API")), Timeout = TimeSpan.FromSeconds(30) };
        var credentials = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Require("CMP_TEST_RABBITMQ_USER")}:{Require("CMP_TEST_RABBITMQ_PASSWORD")}"));
        _api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", credentials);
        Node = Require("CMP_TEST_RABBITMQ_NODE");
    }

    public Uri WebSocketUrl { get; }

    public string Node { get; }

    /// <summary>What Waldur does when it creates an event queue: a vhost per user, a login per subscription, a durable queue.</summary>
    public async Task ProvisionQueueAsync(string vhost, string login, string password, string queue)
    {
        await PutAsync($"vhosts/{Uri.EscapeDataString(vhost)}", new JsonObject());
        await PutAsync($"users/{Uri.EscapeDataString(login)}", new JsonObject { ["password"] = password, ["tags"] = "" });
        await PutAsync($"permissions/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(login)}", new JsonObject { ["configure"] = ".*", ["write"] = ".*", ["read"] = ".*" });
        await PutAsync($"queues/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(queue)}", new JsonObject { ["durable"] = true, ["auto_delete"] = false });
    }

    /// <summary>
    /// Puts an adapter's events on this broker: Waldur's <paramref name="waldur"/> creates each queue it announces here
    /// (its vhost, its login, the subscription UUID, and the queue) and records it in <paramref name="queues"/> by object
    /// type ("order", "resource"); <paramref name="settings"/> turn events on with short reconnect delays, and the
    /// stuck-order refeed off, so only events (and their catch-up polls) bring orders.
    /// </summary>
    public void ServeEvents(CmpWaldurAdapter.Emulators.WaldurEmulator waldur, IDictionary<string, string?> settings, IDictionary<string, string>? queues = null)
    {
        waldur.OnQueueCreated = (vhost, queue) =>
        {
            ProvisionQueueAsync(vhost, queue.Split('_')[1], CmpWaldurAdapter.Emulators.WaldurEmulator.Token, queue).GetAwaiter().GetResult();
            if (queues is not null)
            {
                lock (queues)
                {
                    queues[queue.EndsWith("_order", StringComparison.Ordinal) ? "order" : "resource"] = queue;
                }
            }
        };
        settings["Events:Enabled"] = "true";
        settings["Events:WebSocketUrl"] = WebSocketUrl.ToString();
        settings["Events:InitialReconnectDelay"] = "00:00:00.200";
        settings["Events:MaxReconnectDelay"] = "00:00:02";
        settings["Orders:StuckCheckInterval"] = "01:00:00";
    }

    /// <summary>What Waldur does when an event subscription is deleted: its queue and its login go; the login's connections close.</summary>
    public async Task RemoveQueueAsync(string vhost, string login, string queue)
    {
        (await _api.DeleteAsync($"queues/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(queue)}")).EnsureSuccessStatusCode();
        (await _api.DeleteAsync($"users/{Uri.EscapeDataString(login)}")).EnsureSuccessStatusCode();
    }

    /// <summary>Publishes a message to a queue through the default exchange, as Waldur's handlers do.</summary>
    public async Task PublishAsync(string vhost, string queue, JsonObject payload)
    {
        var response = await _api.PostAsJsonAsync($"exchanges/{Uri.EscapeDataString(vhost)}/amq.default/publish", new JsonObject
        {
            ["properties"] = new JsonObject { ["delivery_mode"] = 2, ["content_type"] = "application/json" },
            ["routing_key"] = queue,
            ["payload"] = payload.ToJsonString(),
            ["payload_encoding"] = "string",
        });
        response.EnsureSuccessStatusCode();
        var routed = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["routed"]!.GetValue<bool>();
        if (!routed)
        {
            throw new InvalidOperationException($"The broker did not route the message to {queue}.");
        }
    }

    public async Task<int> ConsumerCountAsync(string vhost, string queue)
    {
        var response = await _api.GetAsync($"queues/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(queue)}");
        response.EnsureSuccessStatusCode();
        return JsonNode.Parse(await response.Content.ReadAsStringAsync())!["consumers"]?.GetValue<int>() ?? 0;
    }

    /// <summary>Restarts the broker application (every connection drops; durable queues survive).</summary>
    public async Task RestartAsync()
    {
        await RabbitMqCtlAsync("stop_app");
        await RabbitMqCtlAsync("start_app");
        await RabbitMqCtlAsync("await_startup");
    }

    private async Task RabbitMqCtlAsync(string command)
    {
        using var process = Process.Start(new ProcessStartInfo("rabbitmqctl", ["-n", Node, command])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var error = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {command} failed: {await error}");
        }
    }

    private async Task PutAsync(string path, JsonObject body)
    {
        var response = await _api.PutAsJsonAsync(path, body);
        response.EnsureSuccessStatusCode();
    }

    private static string Require(string name) =>
        Environment.GetEnvironmentVariable(name)
        ?? throw new InvalidOperationException($"{name} is not set: run the tests through scripts/test.sh, which starts RabbitMQ.");

    public void Dispose() => _api.Dispose();
}
