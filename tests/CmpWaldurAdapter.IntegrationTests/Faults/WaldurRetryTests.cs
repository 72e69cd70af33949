using System.Net;
using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.IntegrationTests.Orders;
using CmpWaldurAdapter.Offerings;
using CmpWaldurAdapter.Orders;
using CmpWaldurAdapter.Testing.Fakes;
using CmpWaldurAdapter.Waldur.Api;
using CmpWaldurAdapter.Waldur.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Refit;

namespace CmpWaldurAdapter.IntegrationTests.Faults;

/// <summary>
/// Which Waldur calls the client sends again after a transient failure: a value set twice is the same value, but a
/// create sent twice after its answer was lost is a twin, and a transition sent twice is refused.
/// </summary>
public sealed class WaldurRetryTests : IAsyncLifetime
{
    private OrderTestBed _bed = null!;

    public async Task InitializeAsync()
    {
        _bed = await OrderTestBed.CreateAsync();
        await _bed.StartServicesAsync();
    }

    public async Task DisposeAsync() => await _bed.DisposeAsync();

    private IWaldurApi Waldur => _bed.Services.GetRequiredService<IWaldurApi>();

    [Fact]
    public async Task A_usage_total_answered_503_is_sent_once()
    {
        // A month-to-date total sent again after its answer was lost could overwrite a newer one another report path
        // sent meanwhile: the usage reporter reads the ledger and Waldur again and sends anew next run instead.
        var resource = _bed.Waldur.ResourceOf(_bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes()));
        _bed.Waldur.Fail("POST", "/api/marketplace-component-usages/set_usage/", 503);

        var failure = await Assert.ThrowsAsync<ApiException>(() => Waldur.SetUsageAsync(new ComponentUsageCreateRequest
        {
            Resource = resource,
            Date = DateTimeOffset.UtcNow,
            Usages = [new ComponentUsageItemRequest { Type = "chat_credits", Amount = "12.00" }],
        }, CancellationToken.None));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failure.StatusCode);
        Assert.Equal(1, _bed.Waldur.Count("POST", "/api/marketplace-component-usages/set_usage/"));
        Assert.Empty(_bed.Waldur.Usages);
    }

    [Fact]
    public async Task A_create_answered_503_is_sent_once()
    {
        _bed.Waldur.Fail("POST", "/api/marketplace-categories/", 503, times: 3);

        var failure = await Assert.ThrowsAsync<ApiException>(() => Waldur.CreateCategoryAsync(new MarketplaceCategoryRequest { Title = "Agents" }, CancellationToken.None));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, failure.StatusCode);
        Assert.Equal(1, _bed.Waldur.Count("POST", "/api/marketplace-categories/"));
    }

    [Theory]
    [InlineData("approve_by_provider")]
    [InlineData("set_state_done")]
    public async Task An_order_transition_answered_503_is_sent_once_and_the_order_is_done_on_a_later_attempt(string transition)
    {
        var order = _bed.Waldur.PlaceCreateOrder(_bed.Offering, _bed.ValidAttributes());
        _bed.Waldur.Fail("POST", $"/api/marketplace-orders/{order}/{transition}/", 503, times: 3);

        await Assert.ThrowsAsync<OrderDeferredException>(() => _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal(1, _bed.Waldur.Count("POST", $"/api/marketplace-orders/{order}/{transition}/"));

        _bed.Waldur.Heal();
        Assert.Equal(OrderOutcome.Completed, await _bed.Processor.ProcessAsync(order, CancellationToken.None));
        Assert.Equal("done", _bed.Waldur.OrderState(order));
    }

    [Theory]
    [InlineData("/api/marketplace-site-agent-identities/")]
    [InlineData("/api/marketplace-site-agent-identities/.*/register_event_subscription/")]
    [InlineData("/api/event-subscriptions/.*/create_queue/")]
    public async Task An_event_channel_create_whose_answer_is_lost_is_sent_once_and_registering_again_finds_what_it_made(string create)
    {
        var registrar = _bed.Services.GetRequiredService<EventChannelRegistrar>();
        var offering = _bed.Services.GetRequiredService<ServedOfferings>().Offerings.Single();
        _bed.Waldur.LoseAnswer("POST", create);

        await Assert.ThrowsAsync<ApiException>(() => registrar.RegisterAsync(offering, ObservableObjectTypeEnum.Order, CancellationToken.None));
        Assert.Equal(1, _bed.Waldur.Count("POST", create));

        var binding = await registrar.RegisterAsync(offering, ObservableObjectTypeEnum.Order, CancellationToken.None);
        var again = await registrar.RegisterAsync(offering, ObservableObjectTypeEnum.Order, CancellationToken.None);

        // One identity (the second registration found it) and one subscription and queue name throughout.
        Assert.Equal(1, _bed.Waldur.Count("POST", "/api/marketplace-site-agent-identities/"));
        Assert.Equal(binding, again);
    }
}
