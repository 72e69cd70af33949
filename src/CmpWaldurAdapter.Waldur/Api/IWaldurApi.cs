using CmpWaldurAdapter.Waldur.Contracts;
using Refit;

namespace CmpWaldurAdapter.Waldur.Api;

/// <summary>
/// The Waldur operations the adapter calls, over the DTOs NSwag generates from <c>openapi/waldur.yaml</c>.
/// Paths keep Waldur's trailing slashes exactly. Paged lists answer the whole response (its headers say whether more
/// pages follow): read them with <see cref="WaldurPages.ReadAllAsync{T}"/>.
/// </summary>
[Headers("Accept: application/json")]
public interface IWaldurApi
{
    // Orders

    /// <summary>One page of the offering's orders in the states, oldest first so pages hold still while new orders arrive.</summary>
    [Get("/api/marketplace-orders/?o=created")]
    Task<IApiResponse<List<OrderDetails>>> ListOrdersAsync(
        [AliasAs("offering_uuid")] Guid offeringUuid,
        [AliasAs("state")][Query(CollectionFormat.Multi)] IEnumerable<string> states,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    [Get("/api/marketplace-orders/{uuid}/")]
    Task<OrderDetails> GetOrderAsync(Guid uuid, CancellationToken cancellationToken);

    [Post("/api/marketplace-orders/{uuid}/approve_by_provider/")]
    Task ApproveByProviderAsync(Guid uuid, [Body] OrderApproveByProviderRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-orders/{uuid}/reject_by_provider/")]
    Task RejectByProviderAsync(Guid uuid, [Body] OrderProviderRejectionRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-orders/{uuid}/set_state_done/")]
    Task SetStateDoneAsync(Guid uuid, CancellationToken cancellationToken);

    [Post("/api/marketplace-orders/{uuid}/set_state_erred/")]
    Task SetStateErredAsync(Guid uuid, [Body] OrderErrorDetailsRequest request, CancellationToken cancellationToken);

    // Provider resources

    [Get("/api/marketplace-provider-resources/")]
    Task<IApiResponse<List<Resource>>> ListProviderResourcesAsync(
        [AliasAs("offering_uuid")] Guid offeringUuid,
        [AliasAs("state")][Query(CollectionFormat.Multi)] IEnumerable<string> states,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    [Get("/api/marketplace-provider-resources/{uuid}/")]
    Task<Resource> GetProviderResourceAsync(Guid uuid, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-resources/{uuid}/set_backend_id/")]
    Task SetResourceBackendIdAsync(Guid uuid, [Body] ResourceBackendIDRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-resources/{uuid}/set_backend_metadata/")]
    Task SetResourceBackendMetadataAsync(Guid uuid, [Body] ResourceBackendMetadataRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-resources/{uuid}/submit_report/")]
    Task SubmitResourceReportAsync(Guid uuid, [Body] ResourceReportRequest request, CancellationToken cancellationToken);

    [Get("/api/marketplace-provider-resources/{uuid}/team/")]
    Task<List<ProjectUser>> GetResourceTeamAsync(Guid uuid, CancellationToken cancellationToken);

    // Usage

    [Get("/api/marketplace-component-usages/")]
    Task<IApiResponse<List<ComponentUsageRecord>>> ListComponentUsagesAsync(
        [AliasAs("resource_uuid")] Guid resourceUuid,
        [AliasAs("billing_period")] string billingPeriod,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    /// <summary>Every resource's usages of one offering in one billing period: one page per call instead of one call per resource.</summary>
    [Get("/api/marketplace-component-usages/")]
    Task<IApiResponse<List<ComponentUsageRecord>>> ListOfferingComponentUsagesAsync(
        [AliasAs("offering_uuid")] Guid offeringUuid,
        [AliasAs("billing_period")] string billingPeriod,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    [Post("/api/marketplace-component-usages/set_usage/")]
    Task SetUsageAsync([Body] ComponentUsageCreateRequest request, CancellationToken cancellationToken);

    // Organization credits (money), for the Waldur-funded balance

    [Get("/api/customer-credits/")]
    Task<IApiResponse<List<CustomerCredit>>> ListCustomerCreditsAsync(
        [AliasAs("customer_uuid")] Guid customerUuid,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    // Organizations

    /// <summary>An organization's name alone: reconciliation names organizations first recorded without one.</summary>
    [Get("/api/customers/{uuid}/?field=name")]
    Task<Customer> GetCustomerNameAsync(Guid uuid, CancellationToken cancellationToken);

    // Offerings

    [Get("/api/marketplace-provider-offerings/{uuid}/")]
    Task<ProviderOfferingDetails> GetProviderOfferingAsync(Guid uuid, CancellationToken cancellationToken);

    [Get("/api/marketplace-provider-offerings/")]
    Task<IApiResponse<List<ProviderOfferingDetails>>> ListProviderOfferingsAsync(
        [AliasAs("customer_uuid")] Guid customerUuid,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/")]
    Task<ProviderOfferingDetails> CreateProviderOfferingAsync([Body] OfferingCreateRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/activate/")]
    Task ActivateProviderOfferingAsync(Guid uuid, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/update_overview/")]
    Task UpdateOfferingOverviewAsync(Guid uuid, [Body] OfferingOverviewUpdateRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/update_description/")]
    Task UpdateOfferingCategoryAsync(Guid uuid, [Body] OfferingDescriptionUpdateRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/update_options/")]
    Task UpdateOfferingOptionsAsync(Guid uuid, [Body] OfferingOptionsUpdateRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/update_resource_options/")]
    Task UpdateOfferingResourceOptionsAsync(Guid uuid, [Body] OfferingResourceOptionsUpdateRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/update_integration/")]
    Task UpdateOfferingIntegrationAsync(Guid uuid, [Body] OfferingIntegrationUpdateRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/create_offering_component/")]
    Task CreateOfferingComponentAsync(Guid uuid, [Body] OfferingComponentRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-provider-offerings/{uuid}/update_offering_component/")]
    Task UpdateOfferingComponentAsync(Guid uuid, [Body] UpdateOfferingComponentRequest request, CancellationToken cancellationToken);

    /// <summary>One page of the categories whose title contains <paramref name="title"/> (Waldur's filter is not exact).</summary>
    [Get("/api/marketplace-categories/")]
    Task<IApiResponse<List<MarketplaceCategory>>> ListCategoriesAsync(
        [AliasAs("title")] string title,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    [Post("/api/marketplace-categories/")]
    Task<MarketplaceCategory> CreateCategoryAsync([Body] MarketplaceCategoryRequest request, CancellationToken cancellationToken);

    /// <summary>One page of the offering's plans.</summary>
    [Get("/api/marketplace-plans/")]
    Task<IApiResponse<List<ProviderPlanDetails>>> ListPlansAsync(
        [AliasAs("offering_uuid")] Guid offeringUuid,
        [AliasAs("page")] int page,
        [AliasAs("page_size")] int pageSize,
        CancellationToken cancellationToken);

    [Post("/api/marketplace-plans/")]
    Task<ProviderPlanDetails> CreatePlanAsync([Body] ProviderPlanDetailsRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-plans/{uuid}/update_prices/")]
    Task UpdatePlanPricesAsync(Guid uuid, [Body] PricesUpdateRequest request, CancellationToken cancellationToken);

    [Get("/api/marketplace-service-providers/")]
    Task<List<ServiceProvider>> ListServiceProvidersAsync([AliasAs("customer_uuid")] Guid customerUuid, CancellationToken cancellationToken);

    // Site-agent identity and event subscriptions

    [Get("/api/marketplace-site-agent-identities/")]
    Task<List<AgentIdentity>> ListAgentIdentitiesAsync(
        [AliasAs("offering_uuid")] string offeringUuid,
        [AliasAs("name")] string name,
        CancellationToken cancellationToken);

    [Post("/api/marketplace-site-agent-identities/")]
    Task<AgentIdentity> CreateAgentIdentityAsync([Body] AgentIdentityRequest request, CancellationToken cancellationToken);

    [Post("/api/marketplace-site-agent-identities/{uuid}/register_event_subscription/")]
    Task<EventSubscription> RegisterEventSubscriptionAsync(Guid uuid, [Body] AgentEventSubscriptionCreateRequest request, CancellationToken cancellationToken);

    [Post("/api/event-subscriptions/{uuid}/create_queue/")]
    Task<EventSubscriptionQueue> CreateQueueAsync(Guid uuid, [Body] EventSubscriptionQueueCreateRequest request, CancellationToken cancellationToken);

    // Health

    [Get("/api/users/me/?field=uuid")]
    Task<User> GetCurrentUserAsync(CancellationToken cancellationToken);
}
