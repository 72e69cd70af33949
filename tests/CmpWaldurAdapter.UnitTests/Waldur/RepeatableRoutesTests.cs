using System.Net;
using System.Reflection;
using CmpWaldurAdapter.Emulators;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Refit;

namespace CmpWaldurAdapter.UnitTests.Waldur;

/// <summary>
/// The Waldur POSTs the client may send again after a transient failure are named by their whole route in
/// <see cref="WaldurServiceCollectionExtensions.RepeatableRoutes"/>. Every POST route <see cref="IWaldurApi"/> really
/// has must be listed there or here as sent once, so a renamed route cannot silently stop being retried, and a new
/// one (even one ending in an action that is repeatable elsewhere) cannot be added without deciding whether it may be
/// sent twice.
/// </summary>
public sealed class RepeatableRoutesTests
{
    /// <summary>
    /// The POST routes that must be sent once: creates (repeated after a lost answer, each makes a twin), transitions
    /// (a repeated one is refused with a 4xx that hides that the first went through) and usage totals (a late repeat
    /// overwrites a newer total).
    /// </summary>
    private static readonly HashSet<string> SentOnceRoutes = new(StringComparer.Ordinal)
    {
        // Order transitions.
        "/api/marketplace-orders/{uuid}/approve_by_provider/",
        "/api/marketplace-orders/{uuid}/reject_by_provider/",
        "/api/marketplace-orders/{uuid}/set_state_done/",
        "/api/marketplace-orders/{uuid}/set_state_erred/",

        // Offering transition.
        "/api/marketplace-provider-offerings/{uuid}/activate/",

        // A month-to-date total other report paths move on: sent again late, it overwrites a newer one.
        "/api/marketplace-component-usages/set_usage/",

        // Creates.
        "/api/marketplace-provider-offerings/",
        "/api/marketplace-provider-offerings/{uuid}/create_offering_component/",
        "/api/marketplace-categories/",
        "/api/marketplace-plans/",
        "/api/marketplace-site-agent-identities/",
        "/api/marketplace-site-agent-identities/{uuid}/register_event_subscription/",
        "/api/event-subscriptions/{uuid}/create_queue/",
    };

    private static IReadOnlyList<string> RepeatableRoutes => WaldurServiceCollectionExtensions.RepeatableRoutes;

    private static IReadOnlyList<string> PostRoutes { get; } = typeof(IWaldurApi)
        .GetMethods()
        .Select(method => method.GetCustomAttribute<PostAttribute>()?.Path)
        .OfType<string>()
        .ToList();

    private static readonly Uri BaseAddress = new("https://waldur.example.org/");

    [Fact]
    public void The_client_has_post_routes_to_check()
    {
        Assert.True(PostRoutes.Count > SentOnceRoutes.Count, $"only {PostRoutes.Count} POST routes found on IWaldurApi");
    }

    [Fact]
    public void Every_post_route_is_either_repeatable_or_sent_once()
    {
        var unclassified = PostRoutes
            .Where(route => !RepeatableRoutes.Contains(route) && !SentOnceRoutes.Contains(route))
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.True(unclassified.Count == 0, "POST routes of IWaldurApi neither in RepeatableRoutes nor in SentOnceRoutes; "
            + $"decide whether sending each twice changes nothing: {string.Join(", ", unclassified)}");
    }

    [Fact]
    public void Every_classed_route_is_a_post_route_and_in_one_list_only()
    {
        var gone = RepeatableRoutes.Concat(SentOnceRoutes).Where(route => !PostRoutes.Contains(route)).Order(StringComparer.Ordinal).ToList();
        var both = RepeatableRoutes.Where(SentOnceRoutes.Contains).ToList();

        Assert.True(gone.Count == 0, $"classed routes IWaldurApi does not POST (renamed or misspelt?): {string.Join(", ", gone)}");
        Assert.True(both.Count == 0, $"routes both repeatable and sent once: {string.Join(", ", both)}");
    }

    [Fact]
    public void The_pipeline_predicate_classifies_each_route_as_sent()
    {
        // The predicate sees the absolute URL the client sends (a uuid in place of the template, Waldur's base address
        // in front), not the template; each route must be classified the same way there.
        var misjudged = PostRoutes.Where(route => IsRepeatable(BaseAddress, route) != RepeatableRoutes.Contains(route)).ToList();

        Assert.True(misjudged.Count == 0, $"routes the pipeline classifies otherwise than the lists: {string.Join(", ", misjudged)}");
    }

    [Theory]
    [InlineData("/api/other-things/{uuid}/set_backend_id/")]
    [InlineData("/api/marketplace-orders/{uuid}/set_backend_id/")]
    [InlineData("/api/marketplace-provider-offerings/{uuid}/update_prices/")]
    [InlineData("/api/marketplace-component-usages/{uuid}/set_usage/")]
    [InlineData("/api/marketplace-provider-resources/{uuid}/{uuid}/set_backend_id/")]
    public void A_repeatable_action_on_another_route_is_sent_once(string route)
    {
        Assert.False(IsRepeatable(BaseAddress, route), $"{route} would be retried for ending in a repeatable action");
    }

    [Fact]
    public void A_repeatable_route_stays_repeatable_under_a_base_path()
    {
        // Relative, so the URL keeps the base path in front of the route as the client's request does.
        Assert.True(IsRepeatable(new Uri("https://example.org/waldur/"), "api/marketplace-provider-resources/{uuid}/set_backend_id/"));
    }

    [Fact]
    public async Task A_backend_id_answered_503_is_sent_again_through_the_real_client()
    {
        using var waldur = new WaldurFake();
        using var services = ClientFor(waldur);
        var api = services.GetRequiredService<IWaldurApi>();
        var resource = waldur.ResourceOf(waldur.PlaceCreateOrder(waldur.AddOffering("Agents")));
        var route = $"/api/marketplace-provider-resources/{resource}/set_backend_id/";
        waldur.Fail("POST", route, 503);

        await api.SetResourceBackendIdAsync(resource, new ResourceBackendIDRequest { Backend_id = "sub-42" }, CancellationToken.None);

        Assert.Equal(2, waldur.Count("POST", route));
        Assert.Equal("sub-42", waldur.Resource(resource)["backend_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_transition_answered_503_is_sent_once_through_the_real_client()
    {
        using var waldur = new WaldurFake();
        using var services = ClientFor(waldur);
        var api = services.GetRequiredService<IWaldurApi>();
        var order = waldur.PlaceCreateOrder(waldur.AddOffering("Agents"), state: "executing");
        var route = $"/api/marketplace-orders/{order}/set_state_done/";
        waldur.Fail("POST", route, 503, times: 3);

        var failure = await Assert.ThrowsAsync<ApiException>(() => api.SetStateDoneAsync(order, CancellationToken.None));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failure.StatusCode);
        Assert.Equal(1, waldur.Count("POST", route));
        Assert.Equal("executing", waldur.OrderState(order));
    }

    private static bool IsRepeatable(Uri baseAddress, string route)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, route.Replace("{uuid}", Guid.NewGuid().ToString(), StringComparison.Ordinal)));
        return WaldurServiceCollectionExtensions.IsRepeatable(request);
    }

    private static Microsoft.Extensions.DependencyInjection.ServiceProvider ClientFor(WaldurFake waldur)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Waldur:BaseUrl"] = waldur.Upstream.Url.ToString(),
            ["Waldur:Token"] = WaldurEmulator.Token,
            ["Waldur:RetryAttempts"] = "3",
            ["Waldur:RetryDelay"] = "00:00:00.010",
            ["Waldur:AttemptTimeout"] = "00:00:10",
        }).Build();
        return new ServiceCollection().AddLogging().AddWaldurClient(configuration).BuildServiceProvider();
    }
}
