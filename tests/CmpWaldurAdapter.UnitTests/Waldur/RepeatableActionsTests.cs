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
/// The Waldur POSTs the client may send again after a transient failure are named by their action (the last path
/// segment) in <see cref="WaldurServiceCollectionExtensions.RepeatableActions"/>. The list is held against the routes
/// <see cref="IWaldurApi"/> really has, so a renamed action cannot silently stop being retried, and a new POST route
/// cannot be added without deciding whether it may be sent twice.
/// </summary>
public sealed class RepeatableActionsTests
{
    /// <summary>
    /// The POST routes that must be sent once: creates (repeated after a lost answer, each makes a twin) and
    /// transitions (a repeated one is refused with a 4xx that hides that the first went through).
    /// </summary>
    private static readonly HashSet<string> NotRepeatableRoutes = new(StringComparer.Ordinal)
    {
        // Order transitions.
        "/api/marketplace-orders/{uuid}/approve_by_provider/",
        "/api/marketplace-orders/{uuid}/reject_by_provider/",
        "/api/marketplace-orders/{uuid}/set_state_done/",
        "/api/marketplace-orders/{uuid}/set_state_erred/",

        // Offering transition.
        "/api/marketplace-provider-offerings/{uuid}/activate/",

        // Creates.
        "/api/marketplace-provider-offerings/",
        "/api/marketplace-provider-offerings/{uuid}/create_offering_component/",
        "/api/marketplace-categories/",
        "/api/marketplace-plans/",
        "/api/marketplace-site-agent-identities/",
        "/api/marketplace-site-agent-identities/{uuid}/register_event_subscription/",
        "/api/event-subscriptions/{uuid}/create_queue/",
    };

    private static IReadOnlyList<string> PostRoutes { get; } = typeof(IWaldurApi)
        .GetMethods()
        .Select(method => method.GetCustomAttribute<PostAttribute>()?.Path)
        .OfType<string>()
        .ToList();

    [Fact]
    public void The_client_has_post_routes_to_check()
    {
        Assert.True(PostRoutes.Count > NotRepeatableRoutes.Count, $"only {PostRoutes.Count} POST routes found on IWaldurApi");
    }

    [Fact]
    public void Every_repeatable_action_is_the_action_of_a_post_route()
    {
        var actions = PostRoutes.Select(ActionOf).ToHashSet(StringComparer.Ordinal);

        var unknown = WaldurServiceCollectionExtensions.RepeatableActions.Where(action => !actions.Contains(action)).Order(StringComparer.Ordinal).ToList();

        Assert.True(unknown.Count == 0, $"RepeatableActions names actions IWaldurApi does not POST (renamed or misspelt?): {string.Join(", ", unknown)}");
    }

    [Fact]
    public void Every_post_route_is_either_repeatable_or_known_not_to_be()
    {
        var unclassified = PostRoutes
            .Where(route => !WaldurServiceCollectionExtensions.RepeatableActions.Contains(ActionOf(route)) && !NotRepeatableRoutes.Contains(route))
            .Order(StringComparer.Ordinal)
            .ToList();

        Assert.True(unclassified.Count == 0, "POST routes of IWaldurApi neither in RepeatableActions nor known not to be repeatable; "
            + $"decide whether sending each twice changes nothing: {string.Join(", ", unclassified)}");
    }

    [Fact]
    public void No_route_known_not_to_be_repeatable_is_retried_and_each_still_exists()
    {
        var retried = NotRepeatableRoutes.Where(route => WaldurServiceCollectionExtensions.RepeatableActions.Contains(ActionOf(route))).ToList();
        var gone = NotRepeatableRoutes.Where(route => !PostRoutes.Contains(route)).ToList();

        Assert.True(retried.Count == 0, $"routes that must be sent once have a repeatable action: {string.Join(", ", retried)}");
        Assert.True(gone.Count == 0, $"routes listed as not repeatable that IWaldurApi no longer has: {string.Join(", ", gone)}");
    }

    [Fact]
    public void The_pipeline_predicate_classifies_each_route_as_sent()
    {
        // The predicate sees the absolute URL the client sends (a uuid in place of the template, Waldur's base address
        // in front), not the template; each route must be classified the same way there.
        var baseAddress = new Uri("https://waldur.example.org/");
        var misjudged = PostRoutes
            .Where(route =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseAddress, route.Replace("{uuid}", Guid.NewGuid().ToString(), StringComparison.Ordinal)));
                return WaldurServiceCollectionExtensions.IsRepeatable(request) == NotRepeatableRoutes.Contains(route);
            })
            .ToList();

        Assert.True(misjudged.Count == 0, $"routes the pipeline classifies otherwise than the lists: {string.Join(", ", misjudged)}");
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

    private static string ActionOf(string route) => route.Split('?')[0].TrimEnd('/').Split('/')[^1];

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
