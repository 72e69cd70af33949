using System.Net;
using System.Text.Json.Nodes;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Persistence;
using CmpWaldurAdapter.Testing.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace CmpWaldurAdapter.IntegrationTests.Hosting;

public sealed class MetricsTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync() => _bed = await OrderTestBed.CreateAsync();

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    [Fact]
    public async Task Metrics_are_served_in_prometheus_format_with_order_and_upstream_counts()
    {
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503, times: 3);
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(10));
        using var client = server.CreateClient();

        var text = await OnceCompletedCountedAsync(client);

        // An approval is a state transition the HTTP client does not repeat: each refused one defers the order once.
        Assert.Contains("cmp_orders_processed_total{type=\"Create\",outcome=\"Deferred\"} 3", text);
        Assert.Contains("cmp_upstream_requests_total{upstream=\"waldur\",outcome=\"server_error\"} 3", text);
        Assert.Matches(@"cmp_upstream_requests_total\{upstream=""waldur"",outcome=""success""\} [1-9]", text);
        Assert.Contains("cmp_order_event_to_done_seconds_count 1", text);
        Assert.Contains("# TYPE cmp_order_event_to_done_seconds histogram", text);
        Assert.Contains("# TYPE cmp_upstream_request_duration_seconds histogram", text);
        await AssertEveryAttemptIsTimedAsync(client, "waldur");
    }

    [Fact]
    public async Task An_order_deferred_because_Waldur_cannot_be_read_is_counted_with_an_unknown_type()
    {
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // Two reads of the order, each three attempts (the Waldur client retries a GET twice), fail; the third goes through.
        _bed.Waldur.Fail("GET", $"/api/marketplace-orders/{order}/", 503, times: 6);
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(15));
        using var client = server.CreateClient();

        var orders = OrderLines(await OnceCompletedCountedAsync(client));

        // Deferred before its type was known: counted under type "unknown", not left out.
        Assert.Equal(
            ["cmp_orders_processed_total{type=\"Create\",outcome=\"Completed\"} 1", "cmp_orders_processed_total{type=\"unknown\",outcome=\"Deferred\"} 2"],
            orders);
        await AssertEveryAttemptIsTimedAsync(client, "waldur");
    }

    [Fact]
    public async Task A_call_whose_every_attempt_times_out_is_counted_per_attempt_and_defers_the_order()
    {
        _bed.Settings["Waldur:AttemptTimeout"] = "00:00:00.300";
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // Every attempt of the first read of the order answers after it gave up: the whole call fails with a timeout.
        _bed.Waldur.Fail("GET", $"/api/marketplace-orders/{order}/", 503, times: 3, delay: TimeSpan.FromSeconds(2));
        var timeoutsBefore = Value(await ScrapeAsync(server), "cmp_upstream_requests_total{upstream=\"waldur\",outcome=\"timeout\"}");
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(20));
        using var client = server.CreateClient();

        var text = await OnceCompletedCountedAsync(client);

        Assert.Contains("cmp_orders_processed_total{type=\"unknown\",outcome=\"Deferred\"} 1", text);
        // Each of the three attempts counts as a timeout (a cold first call on two busy cores may add one).
        Assert.InRange(Value(text, "cmp_upstream_requests_total{upstream=\"waldur\",outcome=\"timeout\"}") - timeoutsBefore, 3, 4);
        Assert.DoesNotContain("outcome=\"canceled\"", text);
        await AssertEveryAttemptIsTimedAsync(client, "waldur");
    }

    [Fact]
    public async Task Rejected_and_erred_orders_are_counted_under_their_outcomes()
    {
        var server = await _bed.StartServerAsync();
        var inbox = server.Services.GetRequiredService<OrderInbox>();
        var invalid = _bed.Waldur.PlaceCreateOrder(_bed.Offering, new JsonObject { ["escalate_after"] = "many" });
        await inbox.EnqueueAsync(invalid, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(invalid) == "rejected", TimeSpan.FromSeconds(10));
        _bed.Provisioner.FailPermanently("create-knowledge-base", "The template is invalid.");
        var failing = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        await inbox.EnqueueAsync(failing, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(failing) == "erred", TimeSpan.FromSeconds(10));
        using var client = server.CreateClient();

        var orders = new List<string>();
        // Counted once the processor returns, just after its last call to Waldur.
        await Eventually.TrueAsync(async () => (orders = OrderLines(await client.GetStringAsync("/metrics"))).Count == 2, TimeSpan.FromSeconds(10), "both orders are counted");

        Assert.Equal(
            ["cmp_orders_processed_total{type=\"Create\",outcome=\"Erred\"} 1", "cmp_orders_processed_total{type=\"Create\",outcome=\"Rejected\"} 1"],
            orders);
    }

    [Fact]
    public async Task An_upstream_attempt_that_times_out_is_counted_as_a_timeout()
    {
        _bed.Settings["Waldur:AttemptTimeout"] = "00:00:00.300";
        var server = await _bed.StartServerAsync();
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        // The first approval answers after the attempt gave up; the retry goes through.
        _bed.Waldur.Fail("POST", "/api/marketplace-orders/.*/approve_by_provider/", 503, times: 1, delay: TimeSpan.FromSeconds(3));
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(order, "pending-provider", "event", false, CancellationToken.None);
        await Eventually.TrueAsync(() => _bed.Waldur.OrderState(order) == "done", TimeSpan.FromSeconds(15));
        using var client = server.CreateClient();

        var upstream = string.Join('\n', (await client.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{", StringComparison.Ordinal)));

        // At least the delayed approval (on two busy cores a cold first call may pass 300 ms too).
        Assert.Matches(@"cmp_upstream_requests_total\{upstream=""waldur"",outcome=""timeout""\} [1-9]", upstream);
        Assert.DoesNotContain("outcome=\"canceled\"", upstream);
        await AssertEveryAttemptIsTimedAsync(client, "waldur");
    }

    [Fact]
    public async Task An_upstream_that_refuses_connections_is_counted_as_a_network_error()
    {
        _bed.Settings["Waldur:BaseUrl"] = $"http://127.0.0.1:{LoopbackPorts.Free()}/";
        var server = await _bed.StartServerAsync();
        // Announced by an event: the processor reads the order from Waldur, which cannot be reached.
        await server.Services.GetRequiredService<OrderInbox>().EnqueueAsync(Guid.NewGuid(), "pending-provider", "event", false, CancellationToken.None);
        using var client = server.CreateClient();

        var upstream = new List<string>();
        await Eventually.TrueAsync(async () =>
        {
            upstream = [.. (await client.GetStringAsync("/metrics")).Split('\n').Where(l => l.StartsWith("cmp_upstream_requests_total{", StringComparison.Ordinal))];
            return upstream.Count > 0;
        }, TimeSpan.FromSeconds(10), "the refused attempts are counted");

        Assert.All(upstream, l => Assert.Matches(@"^cmp_upstream_requests_total\{upstream=""waldur"",outcome=""network_error""\} [1-9]", l));
    }

    /// <summary>
    /// The duration histogram observes each attempt the requests counter counts, no more and no less. Background work
    /// may be mid-attempt during one scrape (counted but not yet timed, or the other way round), so they must agree in
    /// some scrape.
    /// </summary>
    private static async Task AssertEveryAttemptIsTimedAsync(HttpClient client, string upstream)
    {
        double attempts = 0, timed = 0;
        await Eventually.TrueAsync(async () =>
        {
            var text = await client.GetStringAsync("/metrics");
            attempts = text.Split('\n')
                .Where(l => l.StartsWith($"cmp_upstream_requests_total{{upstream=\"{upstream}\",", StringComparison.Ordinal))
                .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
            timed = Value(text, $"cmp_upstream_request_duration_seconds_count{{upstream=\"{upstream}\"}}");
            return attempts > 0 && attempts == timed;
        }, TimeSpan.FromSeconds(10), $"every {upstream} attempt counted is timed");
        Assert.Equal(attempts, timed);
    }

    /// <summary>/metrics once the completed Create order is counted (just after the processor's last call to Waldur).</summary>
    private static async Task<string> OnceCompletedCountedAsync(HttpClient client)
    {
        var text = "";
        await Eventually.TrueAsync(async () =>
        {
            text = await client.GetStringAsync("/metrics");
            return text.Contains("cmp_orders_processed_total{type=\"Create\",outcome=\"Completed\"} 1", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(10), "the completed order is counted");
        return text;
    }

    /// <summary>The order counts, sorted.</summary>
    private static List<string> OrderLines(string text) =>
        [.. text.Split('\n').Where(l => l.StartsWith("cmp_orders_processed_total{", StringComparison.Ordinal)).Order(StringComparer.Ordinal)];

    private static async Task<string> ScrapeAsync(RunningAdapter server)
    {
        using var client = server.CreateClient();
        return await client.GetStringAsync("/metrics");
    }

    /// <summary>The value of one series in Prometheus text, 0 when it is not there yet.</summary>
    private static double Value(string text, string series) =>
        text.Split('\n').FirstOrDefault(l => l.StartsWith(series + " ", StringComparison.Ordinal)) is { } line
            ? double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture)
            : 0;

    [Fact]
    public async Task With_a_metrics_port_metrics_are_served_there_only_whatever_host_a_client_names_and_nothing_else_is()
    {
        var port = LoopbackPorts.Free();

        var settings = new Dictionary<string, string?>(_bed.Settings) { ["Metrics:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        await using var app = AdapterHost.BuildServer(["--urls", $"http://127.0.0.1:0;http://127.0.0.1:{port}"], null, builder => builder.Configuration.AddInMemoryCollection(settings));
        await app.Services.MigrateAsync(CancellationToken.None);
        await app.StartAsync();
        var main = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single(a => !a.EndsWith($":{port}", StringComparison.Ordinal));
        using var client = new HttpClient();

        // What an ingress in front of the main port would pass on, with any Host header a visitor sends.
        using var viaMain = new HttpRequestMessage(HttpMethod.Get, $"{main}/metrics") { Headers = { Host = $"adapter.example.org:{port}" } };
        Assert.Equal(HttpStatusCode.NotFound, (await client.SendAsync(viaMain)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync($"{main}/healthz")).StatusCode);
        var scraped = await client.GetAsync($"http://127.0.0.1:{port}/metrics");
        Assert.Equal(HttpStatusCode.OK, scraped.StatusCode);
        Assert.Contains("# TYPE cmp_orders_processed_total counter", await scraped.Content.ReadAsStringAsync());

        // The metrics port is opened to scrapers only: nothing else answers there, so none of them reaches the chat,
        // try or widget endpoints past the ingress (nor the probes, which use the main port).
        foreach (var path in new[] { "/healthz", "/v1/models", "/openapi/v1.json", "/widget.js" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"http://127.0.0.1:{port}{path}")).StatusCode);
        }

        using var chat = await client.PostAsync($"http://127.0.0.1:{port}/v1/chat/completions", new StringContent("{}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.NotFound, chat.StatusCode);
        await app.StopAsync();
    }
}
